/**
 * graphql-sse at /graphql/stream, "distinct connections" mode only: one event stream per
 * operation, requested with `Accept: text/event-stream` (GET or POST). The admission path runs
 * before graphql-sse sees the request, so an unauthorised client gets a plain 401/429 instead of
 * an open stream; the body is read with the same limit as POST /graphql; parse/validate and the
 * operation checks are the shared ones; and every refusal, graphql-sse's own included, is a JSON
 * body with `extensions.code`. A subscription stream ends when its key is revoked.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ExecutionResult, GraphQLSchema } from 'graphql';
import { createHandler, type Response as SseResponse } from 'graphql-sse';
import { AppError, isAppError } from '../../shared/errors.ts';
import { formatApiError } from '../errors.ts';
import type { Admission } from '../plugins.ts';
import type { ApiContext, ApiDeps } from '../types.ts';
import {
  asGraphQLError,
  bodyTooLarge,
  errorResponse,
  lazyScope,
  operationAdmission,
  readBody,
  requestIdFrom,
  sendErrors,
} from './request-scope.ts';

/** graphql-sse answers some protocol errors with a bare status or an error without a code. */
function codeForStatus(status: number): 'NOT_FOUND' | 'CONFLICT' | 'BAD_USER_INPUT' {
  if (status === 404) return 'NOT_FOUND';
  if (status === 409) return 'CONFLICT';
  return 'BAD_USER_INPUT';
}

/** A library error response as ours: a JSON body whose every error has `extensions.code`. */
function coded(res: SseResponse): SseResponse {
  const [body, init] = res;
  if (init.status < 400 || (body !== null && typeof body !== 'string')) return res;
  let errors: { message?: unknown; extensions?: Record<string, unknown> }[] = [];
  try {
    const parsed = body ? (JSON.parse(body) as { errors?: typeof errors }) : {};
    if (Array.isArray(parsed.errors)) errors = parsed.errors;
  } catch {
    // Not JSON: replaced below.
  }
  if (errors.length === 0) errors = [{ message: body || init.statusText || `HTTP ${init.status}` }];
  const withCodes = errors.map((e) =>
    typeof e.extensions?.code === 'string'
      ? e
      : { message: String(e.message), extensions: { ...e.extensions, code: codeForStatus(init.status) } },
  );
  const text = JSON.stringify({ errors: withCodes });
  const headers = { ...init.headers, 'content-type': 'application/json; charset=utf-8' };
  return [text, { ...init, headers }];
}

export function graphqlSseHandler(schema: GraphQLSchema, deps: ApiDeps, admission: Admission) {
  const format = (ctx: ApiContext, result: ExecutionResult): ExecutionResult =>
    result.errors ? { ...result, errors: result.errors.map((e) => formatApiError(e, ctx) as never) } : result;

  const handler = createHandler<IncomingMessage, ApiContext, ApiContext>({
    schema,
    context: (req) => req.context,
    // onSubscribe below validated with the shared rules; graphql-sse must not validate again.
    validate: () => [],
    async onSubscribe(req, params) {
      const ctx = req.context;
      try {
        const args = await admission.executionArgs(ctx, params);
        // Validation errors in the stream, as graphql-sse does for text/event-stream clients.
        return 'schema' in args ? args : { data: null, errors: [...args] };
      } catch (e) {
        if (isAppError(e)) {
          const r = errorResponse(e, ctx);
          return [r.body, { status: r.status, statusText: '', headers: r.headers }] as const;
        }
        return { data: null, errors: [asGraphQLError(e)] };
      }
    },
    onNext: (ctx, _req, result) => format(ctx, result as ExecutionResult) as never,
  });

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestId = requestIdFrom(req.headers['x-request-id']);
    const scope = lazyScope(requestId, deps.log);
    res.setHeader('x-request-id', requestId);
    if (req.method !== 'GET' && req.method !== 'POST') {
      sendErrors(
        res,
        new AppError(
          'BAD_USER_INPUT',
          'Use GET or POST with Accept: text/event-stream (one stream per operation).',
        ),
        scope,
        { allow: 'GET, POST' },
        405,
      );
      return;
    }
    if (req.headers.accept !== 'text/event-stream') {
      sendErrors(
        res,
        new AppError(
          'BAD_USER_INPUT',
          'Send Accept: text/event-stream; this endpoint streams one operation per request.',
        ),
        scope,
        {},
        406,
      );
      return;
    }
    let ctx: ApiContext;
    try {
      ctx = await admission.admit(operationAdmission(req, 'sse', requestId, deps.config.trustedProxyHops));
    } catch (e) {
      sendErrors(res, e, scope);
      return;
    }
    let body: string | null = null;
    if (req.method === 'POST') {
      let raw: Buffer | null;
      try {
        raw = await readBody(req);
      } catch {
        return; // the client went away mid-body
      }
      if (raw === null) {
        sendErrors(res, bodyTooLarge(), scope, { connection: 'close' });
        return;
      }
      body = raw.toString('utf8');
    }
    const [out, init] = coded(
      await handler({
        method: req.method,
        url: req.url ?? '/',
        headers: { get: (key) => [req.headers[key]].flat().join('\n') || undefined },
        body,
        raw: req,
        context: ctx,
      }),
    );
    res.writeHead(init.status, init.headers);
    if (out === null || typeof out === 'string') {
      res.end(out ?? undefined);
      return;
    }
    // A revoked key ends the stream (at once here, within the key-cache TTL elsewhere).
    const unwatch = admission.watchKey(req.headers.authorization, () => void out.return(undefined));
    res.once('close', () => {
      unwatch();
      void out.return(undefined);
    });
    try {
      for await (const chunk of out) {
        if (!res.writable) break;
        await new Promise<void>((resolve, reject) =>
          res.write(chunk, (err) => (err ? reject(err) : resolve())),
        );
      }
    } catch {
      // The client went away mid-write.
    } finally {
      unwatch();
      res.end();
    }
  };
}
