import { AppError } from '../../shared/errors.ts';

/**
 * What both backends store as the message body: the payload plus the idempotency key and, for
 * dead letters moved by us, the last error. Short field names because SQS bills by size.
 */
export interface Envelope<P> {
  /** Idempotency key (SendOptions.key); absent -> the backend message id is the key. */
  k?: string;
  p: P;
  /** Last handler error message, set on dead letters. */
  e?: string;
}

export function encodeEnvelope<P>(payload: P, key: string | undefined, error?: string): Envelope<P> {
  const env: Envelope<P> = { p: payload };
  if (key !== undefined) env.k = key;
  if (error !== undefined) env.e = error;
  return env;
}

/** Validates an envelope read back from the backend; a foreign message is an error, not a crash. */
export function decodeEnvelope<P>(raw: unknown, messageId: string): Envelope<P> {
  const value = typeof raw === 'string' ? parseJson(raw, messageId) : raw;
  if (value === null || typeof value !== 'object' || !('p' in value)) {
    throw new AppError(
      'BAD_USER_INPUT',
      `Queue message ${messageId} is not a Harmon queue envelope ({k?, p}).`,
    );
  }
  return value as Envelope<P>;
}

function parseJson(text: string, messageId: string): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new AppError('BAD_USER_INPUT', `Queue message ${messageId} is not valid JSON.`, { cause });
  }
}

/** A one-line error description for dead letters and pg-boss job output. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`.slice(0, 2000);
  return String(error).slice(0, 2000);
}
