/**
 * The GraphQL API as an AWS Lambda handler behind an ALB target group (infra/lib/api-service.ts
 * routes `/lambda/graphql` to it): the same schema, Apollo rules, auth, rate limit and error
 * policy as POST /graphql, through @as-integrations/aws-lambda's ALB request handler. Queries and
 * mutations only; subscriptions need the long-lived API service.
 */
import { handlers, type LambdaHandler, startServerAndCreateLambdaHandler } from '@as-integrations/aws-lambda';
import type { ALBEvent, ALBResult, Context } from 'aws-lambda';
import type { GraphQLSchema } from 'graphql';
import { AppError } from '../../shared/errors.ts';
import type { Admission } from '../plugins.ts';
import type { ApiContext, ApiDeps, JobEventSource } from '../types.ts';
import { clientAddress } from '../use-auth-throttle.ts';
import { newApollo } from './http.ts';
import { errorResponse, type RequestScope, requestIdFrom, requestScope } from './request-scope.ts';

type AlbRequestHandler = ReturnType<typeof handlers.createALBEventRequestHandler>;
export type GraphqlLambdaHandler = (event: ALBEvent, context: Context) => Promise<ALBResult>;

/** Lambda has no long-lived connection to stream on: a subscription resolver must never run here. */
export const noSubscriptions: JobEventSource = {
  subscribeJob() {
    throw new AppError(
      'BAD_USER_INPUT',
      'Subscriptions are not served by the Lambda endpoint; use /graphql.',
    );
  },
  subscribeTenant() {
    throw new AppError(
      'BAD_USER_INPUT',
      'Subscriptions are not served by the Lambda endpoint; use /graphql.',
    );
  },
};

/** A header of an ALB event, case-insensitively (ALB passes names as the client sent them). */
function header(event: ALBEvent, name: string): string | undefined {
  for (const [k, v] of Object.entries(event.headers ?? {})) if (k.toLowerCase() === name) return v;
  const multi = event.multiValueHeaders ?? {};
  for (const [k, v] of Object.entries(multi)) if (k.toLowerCase() === name) return v?.[0];
  return undefined;
}

/** A whole-request error (auth, rate limit) as an ALB response, same body as the HTTP transport. */
function errorResult(err: unknown, scope: RequestScope): ALBResult {
  const r = errorResponse(err, scope);
  return { statusCode: r.status, headers: r.headers, body: r.body };
}

export function createGraphqlLambdaHandler(
  schema: GraphQLSchema,
  deps: ApiDeps,
  admission: Admission,
): GraphqlLambdaHandler {
  const apollo = newApollo(schema, deps, admission);
  // Admission runs in a middleware (it may answer 401/429 before Apollo parses anything); the
  // context function then picks up the principal's context for the same event object.
  const contexts = new WeakMap<ALBEvent, ApiContext>();
  const inner: LambdaHandler<AlbRequestHandler> = startServerAndCreateLambdaHandler(
    // The integration is CommonJS and types its parameter with @apollo/server's CJS declarations;
    // the object is the same ESM server at runtime (it only calls start and executeHTTPGraphQLRequest).
    apollo as unknown as Parameters<typeof startServerAndCreateLambdaHandler>[0],
    handlers.createALBEventRequestHandler(),
    {
      middleware: [
        async (event) => {
          const scope = requestScope.getStore() as RequestScope;
          const started = process.hrtime.bigint();
          const observe = (result: ALBResult) => {
            result.headers = { ...result.headers, 'x-request-id': scope.requestId };
            deps.metrics.observeRequest(
              'lambda',
              result.statusCode,
              Number(process.hrtime.bigint() - started) / 1e9,
            );
          };
          try {
            const ctx = await admission.admit({
              transport: 'lambda',
              phase: 'operation',
              authorization: header(event, 'authorization'),
              // The ALB is always in front of the function and appends the client's address.
              clientAddress: clientAddress(
                undefined,
                header(event, 'x-forwarded-for'),
                Math.max(1, deps.config.trustedProxyHops),
              ),
              requestId: scope.requestId,
            });
            contexts.set(event, ctx);
          } catch (e) {
            const result = errorResult(e, scope);
            observe(result);
            return result;
          }
          return async (result: ALBResult) => observe(result);
        },
      ],
      context: async ({ event }) => {
        const ctx = contexts.get(event);
        // Unreachable unless the middleware chain changes: never serve without a tenant.
        if (!ctx) throw new AppError('UNAUTHENTICATED', 'The request was not authenticated.');
        return ctx;
      },
    },
  );
  return async (event, context) => {
    const requestId = requestIdFrom(header(event, 'x-request-id'));
    const scope: RequestScope = { requestId, log: deps.log.child({ requestId }) };
    // The Node 20 runtime awaits the returned promise; the callback form is not used.
    return requestScope.run(scope, async () => (await inner(event, context, () => {})) as ALBResult);
  };
}
