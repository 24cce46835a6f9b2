/**
 * The one error type that crosses module boundaries. `code` is what clients see (GraphQL
 * `extensions.code`, CLI exit message); `cause` keeps the underlying failure for logs.
 */
export type ErrorCode =
  | 'BAD_USER_INPUT'
  | 'BAD_CONFIG'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'RATE_LIMITED'
  | 'QUOTA_EXCEEDED'
  | 'CANCELED'
  | 'MODEL_INVALID'
  | 'MODEL_LOAD_FAILED'
  | 'EXECUTION_PROVIDER_UNAVAILABLE'
  | 'WEIGHTS_INVALID'
  | 'IMAGE_INVALID'
  | 'STORAGE_ERROR'
  | 'DATABASE_ERROR'
  /** A dependency (the database) is down or overloaded: retry after `details.retryAfter` s. */
  | 'SERVICE_UNAVAILABLE'
  | 'INTERNAL';

export class AppError extends Error {
  readonly code: ErrorCode;
  /** Extra machine-readable detail (field paths, retryAfter seconds, missing tensor names...). */
  readonly details?: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.details = options.details;
  }
}

export function isAppError(e: unknown): e is AppError {
  return e instanceof AppError;
}

/** CLI exit codes per error family, so scripts can tell bad input from a broken install. */
export function exitCodeFor(e: unknown): number {
  if (!isAppError(e)) return 1;
  switch (e.code) {
    case 'BAD_USER_INPUT':
    case 'IMAGE_INVALID':
      return 2;
    case 'BAD_CONFIG':
    case 'EXECUTION_PROVIDER_UNAVAILABLE':
      return 3;
    case 'MODEL_INVALID':
    case 'MODEL_LOAD_FAILED':
    case 'WEIGHTS_INVALID':
      return 4;
    case 'CANCELED':
      return 130;
    default:
      return 1;
  }
}
