/**
 * One error policy for every transport (HTTP, graphql-ws, SSE): clients only ever see errors with
 * `extensions.code`. AppErrors with a client-facing code pass through (with `fields` for bad
 * input and `retryAfter` for limits); request errors from graphql itself (parse, validation,
 * variable coercion) pass through as they name the client's mistake; a database that refuses or
 * does not answer in time is SERVICE_UNAVAILABLE with `retryAfter` (HTTP 503), since the request
 * may well succeed when retried; everything else is masked as "Internal error" and logged with the
 * request id, so stack traces and SQL never leak.
 */
import type { ApolloServerPlugin } from '@apollo/server';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { type AppError, type ErrorCode, isAppError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { isDatabaseUnavailable } from '../storage/db.ts';

/** Codes a client may see verbatim; others are masked as INTERNAL. */
const CLIENT_CODES = new Set<ErrorCode>([
  'BAD_USER_INPUT',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'CONFLICT',
  'RATE_LIMITED',
  'QUOTA_EXCEEDED',
  'CANCELED',
  'SERVICE_UNAVAILABLE',
]);

/** What a client is told to wait before retrying when the database is unavailable. */
export const DATABASE_RETRY_AFTER_SECONDS = 2;
/** Image decoding problems are the client's bad input. */
const ALIASES: Partial<Record<ErrorCode, ErrorCode>> = { IMAGE_INVALID: 'BAD_USER_INPUT' };

/** Codes graphql and Apollo put on request errors (no path: nothing was executed). */
const REQUEST_ERROR_CODES = new Set([
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_USER_INPUT',
  'BAD_REQUEST',
  'OPERATION_RESOLUTION_FAILURE',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
]);

export type FieldIssue = { path: string; message: string };

/** HTTP status for an error code when it is the whole response (auth, limits). */
export function httpStatusFor(code: string): number {
  switch (code) {
    case 'UNAUTHENTICATED':
      return 401;
    case 'FORBIDDEN':
      return 403;
    case 'RATE_LIMITED':
    case 'QUOTA_EXCEEDED':
      return 429;
    case 'SERVICE_UNAVAILABLE':
      return 503;
    case 'INTERNAL':
      return 500;
    default:
      return 400;
  }
}

/** Field paths of a BAD_USER_INPUT AppError: job-inputs' `details.issues` or our `details.fields`. */
function fieldsOf(e: AppError): FieldIssue[] | undefined {
  const d = e.details ?? {};
  const issues = (d.issues ?? d.fields) as unknown;
  if (Array.isArray(issues))
    return issues.map((i: { path?: unknown; message?: unknown }) => ({
      path: String(i.path ?? ''),
      message: String(i.message ?? ''),
    }));
  if (issues && typeof issues === 'object')
    return Object.entries(issues).map(([path, message]) => ({ path, message: String(message) }));
  return undefined;
}

export function appErrorExtensions(e: AppError): Record<string, unknown> {
  const code = ALIASES[e.code] ?? e.code;
  const ext: Record<string, unknown> = { code };
  const fields = fieldsOf(e);
  if (fields) ext.fields = fields;
  if (typeof e.details?.retryAfter === 'number') ext.retryAfter = e.details.retryAfter;
  return ext;
}

export function isClientAppError(e: unknown): e is AppError {
  return isAppError(e) && (CLIENT_CODES.has(e.code) || ALIASES[e.code] !== undefined);
}

/**
 * The formatted error a client sees for `err` (a GraphQLError from execution or validation, or
 * anything thrown). `knownCode` is a code the transport already assigned (Apollo's request errors).
 */
export function formatApiError(
  err: unknown,
  meta: { log: Logger; requestId: string },
  knownCode?: unknown,
): GraphQLFormattedError {
  const gql = err instanceof GraphQLError ? err : undefined;
  const original = gql ? gql.originalError : err;
  const base = gql ? { locations: gql.locations, path: gql.path } : {};
  if (isClientAppError(original))
    return { ...base, message: original.message, extensions: appErrorExtensions(original) };
  if (original instanceof GraphQLError && original !== gql) return formatApiError(original, meta, knownCode);
  if (gql && gql.path === undefined && original == null) {
    // Parse/validation/coercion error: the client's mistake, safe to show. One that wraps a thrown
    // error (e.g. the database timing out during admission) is not the client's: it goes below.
    // Apollo classifies request errors (parse/validation/coercion) in the formatted error it hands
    // to formatError, not always on the error object itself.
    const given = [gql.extensions?.code, knownCode].find(
      (c): c is string => typeof c === 'string' && REQUEST_ERROR_CODES.has(c),
    );
    const code = given ?? 'GRAPHQL_VALIDATION_FAILED';
    const ext: Record<string, unknown> = { code };
    if (typeof gql.extensions?.cost === 'number') ext.cost = gql.extensions.cost;
    return { message: gql.message, locations: gql.locations, extensions: ext };
  }
  if (isDatabaseUnavailable(original ?? err)) {
    meta.log.warn(
      { err: original ?? err, requestId: meta.requestId, path: gql?.path },
      'database unavailable; answered SERVICE_UNAVAILABLE',
    );
    return {
      ...base,
      message: `The service is temporarily unavailable (its database did not answer). Retry in ${DATABASE_RETRY_AFTER_SECONDS} s.`,
      extensions: {
        code: 'SERVICE_UNAVAILABLE',
        retryAfter: DATABASE_RETRY_AFTER_SECONDS,
        requestId: meta.requestId,
      },
    };
  }
  meta.log.error(
    { err: original ?? err, requestId: meta.requestId, path: gql?.path },
    'unexpected error in GraphQL operation',
  );
  return { ...base, message: 'Internal error', extensions: { code: 'INTERNAL', requestId: meta.requestId } };
}

/**
 * HTTP 503 + Retry-After for an operation that failed only because a dependency was unavailable
 * (every error SERVICE_UNAVAILABLE, no top-level field with data): the status a proxy, load
 * balancer or generic HTTP client retries on. Partial results keep 200.
 */
export const serviceUnavailableStatus: ApolloServerPlugin = {
  async requestDidStart() {
    return {
      async willSendResponse({ response }) {
        if (response.body.kind !== 'single') return;
        const { errors, data } = response.body.singleResult;
        if (!errors?.length || !errors.every((e) => e.extensions?.code === 'SERVICE_UNAVAILABLE')) return;
        if (data && Object.values(data).some((v) => v !== null && v !== undefined)) return;
        response.http.status = 503;
        const retryAfter = errors[0].extensions?.retryAfter;
        if (typeof retryAfter === 'number') response.http.headers.set('retry-after', String(retryAfter));
      },
    };
  },
};
