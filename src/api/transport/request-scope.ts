/**
 * The request id and logger of the operation being served, reachable from hooks that the
 * libraries call without our context (Apollo's formatError), via AsyncLocalStorage.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { AppError } from '../../shared/errors.ts';
import { IMAGE_BYTES } from '../../shared/images.ts';
import type { Logger } from '../../shared/logger.ts';
import { formatApiError, httpStatusFor } from '../errors.ts';
import type { AdmitRequest } from '../plugin-types.ts';
import { clientAddress } from '../use-auth-throttle.ts';

export type RequestScope = { requestId: string; log: Logger };
export const requestScope = new AsyncLocalStorage<RequestScope>();

/** The client's x-request-id when it is a short safe token, else a fresh uuid. */
export function requestIdFrom(given: unknown): string {
  return (typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) && given) || randomUUID();
}

/** One HTTP request's operation admission (http and sse): its credentials and the client's address. */
export function operationAdmission(
  req: IncomingMessage,
  transport: 'http' | 'sse',
  requestId: string,
  trustedProxyHops: number,
): AdmitRequest {
  return {
    transport,
    phase: 'operation',
    authorization: req.headers.authorization,
    clientAddress: clientAddress(req.socket.remoteAddress, req.headers['x-forwarded-for'], trustedProxyHops),
    requestId,
  };
}

/**
 * Upper bound on a request body, and on a graphql-ws message: an inline image as base64 (4/3 of
 * IMAGE_BYTES.inline) plus the rest of the query. One limit for HTTP, SSE and WebSocket frames.
 */
export const MAX_BODY_BYTES = 2 * IMAGE_BYTES.inline;

/** The whole-request error of a body over MAX_BODY_BYTES. */
export const bodyTooLarge = () =>
  new AppError(
    'BAD_USER_INPUT',
    `The request body is larger than ${MAX_BODY_BYTES / 1024 / 1024} MiB; upload big images with createUpload.`,
  );

/**
 * The whole body, or null as soon as it exceeds `limit` (the rest is not read: the caller answers
 * with `connection: close`). Plain 'data' events: the async iterator costs several promises per
 * chunk on the hot path.
 */
export function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      req.off('data', onData);
      req.pause();
      resolve(null);
    };
    req.on('data', onData);
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    req.on('error', reject);
    req.on('aborted', () => reject(new Error('request aborted')));
  });
}

/**
 * The status, headers and JSON body of a whole-request GraphQL error (auth, rate limit, body
 * problems), shared by the node:http transports and the Lambda handler.
 */
export function errorResponse(
  err: unknown,
  scope: RequestScope,
  statusOverride?: number,
): { status: number; headers: Record<string, string>; body: string } {
  const formatted: GraphQLFormattedError = formatApiError(err, scope);
  const status = statusOverride ?? httpStatusFor(String(formatted.extensions?.code ?? 'INTERNAL'));
  const retryAfter = formatted.extensions?.retryAfter;
  const body = JSON.stringify({ errors: [formatted] });
  return {
    status,
    headers: {
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(Buffer.byteLength(body)),
      ...(typeof retryAfter === 'number' ? { 'retry-after': String(retryAfter) } : {}),
      ...(status === 401 ? { 'www-authenticate': 'Bearer' } : {}),
    },
    body,
  };
}

/** A whole-request GraphQL error response (auth, rate limit, body problems). */
export function sendErrors(
  res: ServerResponse,
  err: unknown,
  scope: RequestScope,
  headers: Record<string, string> = {},
  status?: number,
): number {
  const r = errorResponse(err, scope, status);
  res.writeHead(r.status, { ...r.headers, ...headers });
  res.end(r.body);
  return r.status;
}

/** A request scope whose child logger is built on first use (only error paths log). */
export function lazyScope(requestId: string, log: Logger): RequestScope {
  let child: Logger | undefined;
  return {
    requestId,
    get log() {
      child ??= log.child({ requestId });
      return child;
    },
  };
}

/**
 * Anything a transport caught while checking an operation, as a GraphQLError for the shared error
 * policy: graphql's own syntax errors get GRAPHQL_PARSE_FAILED (they carry no code), AppErrors
 * ride along as the original error.
 */
export function asGraphQLError(e: unknown): GraphQLError {
  if (e instanceof GraphQLError) {
    if (e.extensions.code === undefined && e.path === undefined && e.message.startsWith('Syntax Error'))
      return new GraphQLError(e.message, {
        source: e.source,
        positions: e.positions,
        extensions: { code: 'GRAPHQL_PARSE_FAILED' },
      });
    return e;
  }
  return new GraphQLError(e instanceof Error ? e.message : String(e), {
    originalError: e instanceof Error ? e : undefined,
  });
}
