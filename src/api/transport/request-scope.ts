/**
 * The request id and logger of the operation being served, reachable from hooks that the
 * libraries call without our context (Apollo's formatError), via AsyncLocalStorage.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GraphQLFormattedError } from 'graphql';
import type { Logger } from '../../shared/logger.ts';
import { formatApiError, httpStatusFor } from '../errors.ts';

export type RequestScope = { requestId: string; log: Logger };
export const requestScope = new AsyncLocalStorage<RequestScope>();

/** Upper bound on a request body: a 1 MiB inline image as base64 plus the query. */
export const MAX_BODY_BYTES = 2 * 1024 * 1024;

export async function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) return null;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** A whole-request GraphQL error response (auth, rate limit, body problems). */
export function sendErrors(
  res: ServerResponse,
  err: unknown,
  scope: RequestScope,
  headers: Record<string, string> = {},
): number {
  const formatted: GraphQLFormattedError = formatApiError(err, scope);
  const code = String(formatted.extensions?.code ?? 'INTERNAL');
  const status = httpStatusFor(code);
  const retryAfter = formatted.extensions?.retryAfter;
  const text = JSON.stringify({ errors: [formatted] });
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    ...(typeof retryAfter === 'number' ? { 'retry-after': String(retryAfter) } : {}),
    ...(status === 401 ? { 'www-authenticate': 'Bearer' } : {}),
    ...headers,
  });
  res.end(text);
  return status;
}
