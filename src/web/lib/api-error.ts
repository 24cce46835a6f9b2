/**
 * Every failure the playground shows is an ApiError with the platform's `extensions.code`, so the
 * UI has one place that turns codes into sentences. Transport failures get client-side codes
 * (NETWORK, BAD_RESPONSE) instead of leaking browser error text.
 */
export type FieldIssue = { path: string; message: string };

export class ApiError extends Error {
  readonly code: string;
  readonly fields: FieldIssue[];
  readonly retryAfter?: number;
  readonly requestId?: string;
  constructor(
    code: string,
    message: string,
    extra: { fields?: FieldIssue[]; retryAfter?: number; requestId?: string } = {},
  ) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.fields = extra.fields ?? [];
    this.retryAfter = extra.retryAfter;
    this.requestId = extra.requestId;
  }
}

type GraphQLErrorLike = { message?: unknown; extensions?: Record<string, unknown> };

/** The first error of a GraphQL `errors` array as an ApiError (codes and details kept). */
export function fromGraphQLErrors(errors: readonly GraphQLErrorLike[]): ApiError {
  const e = errors[0] ?? {};
  const ext = e.extensions ?? {};
  const fields = Array.isArray(ext.fields)
    ? (ext.fields as { path?: unknown; message?: unknown }[]).map((f) => ({
        path: String(f.path ?? ''),
        message: String(f.message ?? ''),
      }))
    : [];
  return new ApiError(
    typeof ext.code === 'string' ? ext.code : 'INTERNAL',
    String(e.message ?? 'Request failed'),
    {
      fields,
      retryAfter: typeof ext.retryAfter === 'number' ? ext.retryAfter : undefined,
      requestId: typeof ext.requestId === 'string' ? ext.requestId : undefined,
    },
  );
}

/**
 * Whatever a graphql-ws sink's `error` receives (an array of GraphQL errors, a CloseEvent-like
 * object, an Error) as an ApiError. The server closes with 4401 and "CODE: message" on a bad key.
 */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (Array.isArray(err)) return fromGraphQLErrors(err as GraphQLErrorLike[]);
  if (
    err &&
    typeof err === 'object' &&
    'code' in err &&
    typeof (err as { code: unknown }).code === 'number'
  ) {
    const { code, reason } = err as { code: number; reason?: string };
    const m = /^([A-Z_]+): (.*)$/.exec(reason ?? '');
    if (code === 4401 || code === 4403)
      return new ApiError(m?.[1] ?? 'UNAUTHENTICATED', m?.[2] ?? 'The API key was not accepted.');
    if (code === 4429) return new ApiError('RATE_LIMITED', m?.[2] ?? 'Too many requests.');
    return new ApiError('NETWORK', `The live connection closed (${code}${reason ? `: ${reason}` : ''}).`);
  }
  if (err instanceof Error) return new ApiError('NETWORK', err.message || 'Network error');
  return new ApiError('NETWORK', 'The live connection failed.');
}

/** The last path segment, which is what the form's field names match (`input.steps` -> `steps`). */
export function fieldName(path: string): string {
  const parts = path.split('.').filter((p) => p && !/^\d+$/.test(p));
  return parts[parts.length - 1] ?? '';
}

export type ErrorView = {
  title: string;
  detail: string;
  retryAfter?: number;
  fields: Record<string, string>;
};

/** A human view of an error: a title naming what to do, the server's sentence, field messages. */
export function describeError(e: ApiError): ErrorView {
  const fields: Record<string, string> = {};
  for (const f of e.fields) {
    const name = fieldName(f.path);
    if (name && !fields[name]) fields[name] = f.message;
  }
  const titles: Record<string, string> = {
    UNAUTHENTICATED: 'Your API key was not accepted. Check it in the API key box above.',
    FORBIDDEN: 'This API key may not do that.',
    NOT_FOUND: 'Not found: the job does not exist or belongs to another tenant.',
    BAD_USER_INPUT: 'Please fix the highlighted fields.',
    RATE_LIMITED: 'Rate limit reached.',
    QUOTA_EXCEEDED: 'Your monthly image quota is used up.',
    CONFLICT: 'This idempotency key was already used with different input.',
    NETWORK: 'The server could not be reached.',
    BAD_RESPONSE: 'The server sent an unexpected response.',
    CANCELED: 'The job was canceled.',
  };
  const title = titles[e.code] ?? 'Something went wrong on the server.';
  const detail =
    e.code === 'INTERNAL' && e.requestId ? `${e.message} (request id ${e.requestId})` : e.message;
  return { title, detail, retryAfter: e.retryAfter, fields };
}
