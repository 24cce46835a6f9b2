import { AppError } from '../../shared/errors.ts';
import type { QueuePolicy } from './port.ts';

/** SQS refuses visibility timeouts above 12 hours. */
export const MAX_RETRY_DELAY_SECONDS = 43_200;

/**
 * Seconds to wait before re-delivering a message whose `attempt`-th delivery failed. Uses the
 * same curve as pg-boss (`delay * 2^attempt / 2 * (1 + random)`, exponent capped at 16) so both
 * backends retry on the same schedule; the jitter spreads out jobs that failed together (a GPU
 * node dying takes many with it) so they do not all retry in the same second.
 */
export function retryDelaySeconds(
  policy: Pick<QueuePolicy, 'retryDelaySeconds' | 'retryBackoff'>,
  attempt: number,
  random: () => number = Math.random,
): number {
  const base = policy.retryDelaySeconds;
  if (base <= 0) return 0;
  if (!policy.retryBackoff) return Math.min(base, MAX_RETRY_DELAY_SECONDS);
  const half = (base * 2 ** Math.min(16, Math.max(1, attempt))) / 2;
  return Math.min(Math.round(half + half * random()), MAX_RETRY_DELAY_SECONDS);
}

/** Rejects a policy either backend would refuse or silently clamp. */
export function validatePolicy(p: QueuePolicy): void {
  const bad = (what: string) =>
    new AppError('BAD_CONFIG', `Queue policy: ${what}.`, { details: { policy: p } });
  if (!Number.isInteger(p.maxAttempts) || p.maxAttempts < 1) throw bad('maxAttempts must be an integer >= 1');
  if (!Number.isInteger(p.visibilityTimeoutSeconds) || p.visibilityTimeoutSeconds < 1) {
    throw bad('visibilityTimeoutSeconds must be an integer >= 1');
  }
  // SQS caps visibility at 12 h; pg-boss caps expiry below 24 h. Keep one limit for both.
  if (p.visibilityTimeoutSeconds > 43_200) throw bad('visibilityTimeoutSeconds must be at most 43200 (12 h)');
  if (!Number.isInteger(p.retryDelaySeconds) || p.retryDelaySeconds < 0) {
    throw bad('retryDelaySeconds must be an integer >= 0');
  }
}
