/**
 * graphql-sse at /graphql/stream ("distinct connections" mode: one event stream per operation).
 * Authentication and the rate limit run before graphql-sse sees the request, so an unauthorised
 * client gets a plain 401/429 instead of an open stream.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type ExecutionResult, type GraphQLSchema, validate } from 'graphql';
import { createHandler } from 'graphql-sse/lib/use/http';
import { formatApiError } from '../errors.ts';
import type { ApiContext, ApiDeps } from '../types.ts';
import { admit, authenticate, contextFor } from '../use-auth.ts';
import { validationRules } from '../use-limits.ts';
import { sendErrors } from './request-scope.ts';

export function graphqlSseHandler(schema: GraphQLSchema, deps: ApiDeps) {
  const contexts = new WeakMap<IncomingMessage, ApiContext>();
  const rules = validationRules();
  const format = (ctx: ApiContext | undefined, result: ExecutionResult) =>
    result.errors
      ? {
          ...result,
          errors: result.errors.map((e) => formatApiError(e, ctx ?? { requestId: 'sse', log: deps.log })),
        }
      : result;

  const handler = createHandler<ApiContext>({
    schema,
    validate: (s, doc) => validate(s, doc, rules),
    context: (req) => contexts.get(req.raw) as ApiContext,
    // biome-ignore lint/suspicious/noExplicitAny: graphql-sse's result type includes incremental patches we never produce.
    onNext: (ctx, _req, result) => format(ctx, result as ExecutionResult) as any,
  });

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestId = randomUUID();
    const scope = { requestId, log: deps.log.child({ requestId }) };
    try {
      const principal = await authenticate(deps, req.headers.authorization);
      await admit(deps, principal);
      contexts.set(req, contextFor(deps, principal, requestId));
    } catch (e) {
      sendErrors(res, e, scope);
      return;
    }
    await handler(req, res);
  };
}
