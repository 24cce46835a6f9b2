/**
 * Per-process token reservation in front of the shared Postgres bucket. Every request taking a
 * token straight from Postgres costs a round trip and serialises all of a tenant's concurrent
 * requests on the bucket's row lock. Instead, a process takes a small batch of tokens in one
 * statement and hands them out locally until they run out or expire.
 *
 * Guarantees kept:
 * - Across all processes, no more tokens are spent than the shared bucket held: every local token
 *   was taken from Postgres first (the batch is min(batch, whole tokens available)).
 * - A tenant whose bucket is empty is refused with retryAfter computed from the shared bucket.
 * - Small limits are exact: the batch is 1 (a round trip per request, as before) unless the rate
 *   is at least 1,200 per minute (`batchFor`).
 *
 * What it costs: tokens a process reserved but did not use within `holdMs` (1 s) are dropped, not
 * returned, so a tenant can lose up to one batch per process per second. The batch is a tenth of
 * one second's refill, so that is at most 10 % of the refill rate per process, and only while the
 * tenant is making requests to that process.
 */
import type { RateDecision, RateLimiter, ReservingRateLimiter } from './rate-limit.ts';
import { retryAfterSeconds } from './rate-limit.ts';

export type BatchOptions = {
  /** Largest batch (default 100). */
  maxBatch?: number;
  /** How long reserved tokens stay usable in this process (default 1,000 ms). */
  holdMs?: number;
  now?: () => number;
};

/** Tokens reserved per round trip: a tenth of a second's refill, 1..maxBatch. */
export function batchFor(perMinute: number, maxBatch = 100): number {
  return Math.max(1, Math.min(maxBatch, Math.floor(perMinute / 600)));
}

type Pool = {
  tokens: number;
  expiresAt: number;
  /** The reservation in flight; concurrent takers wait for it instead of each querying. */
  pending?: Promise<RateDecision | null>;
};

export function batchedRateLimiter(shared: ReservingRateLimiter, options: BatchOptions = {}): RateLimiter {
  const maxBatch = options.maxBatch ?? 100;
  const holdMs = options.holdMs ?? 1000;
  const now = options.now ?? Date.now;
  const pools = new Map<string, Pool>();

  /** Refills `key`'s pool; resolves to a refusal when the shared bucket had no whole token. */
  async function refill(
    pool: Pool,
    key: string,
    perMinute: number,
    batch: number,
  ): Promise<RateDecision | null> {
    const r = await shared.reserve(key, perMinute, batch);
    if (r.granted < 1)
      return { allowed: false, retryAfterSeconds: retryAfterSeconds(r.available, perMinute) };
    pool.tokens = r.granted;
    pool.expiresAt = now() + holdMs;
    return null;
  }

  return {
    async take(key, perMinute, cost = 1) {
      if (perMinute <= 0) return { allowed: false, retryAfterSeconds: 60 };
      const batch = batchFor(perMinute, maxBatch);
      // Several tokens at once (a request of several mutations) are rare: all-or-nothing in the
      // shared bucket, without touching the local pool.
      if (batch === 1 || cost > 1) return shared.take(key, perMinute, cost);
      let pool = pools.get(key);
      if (!pool) {
        pool = { tokens: 0, expiresAt: 0 };
        pools.set(key, pool);
      }
      // Each pass either spends a local token, waits for a reservation that someone else started
      // (which either adds tokens or refuses), or starts one: it ends when tokens run dry in the
      // shared bucket or this taker gets one.
      for (;;) {
        if (pool.tokens >= 1 && now() < pool.expiresAt) {
          pool.tokens -= 1;
          return { allowed: true, remaining: pool.tokens };
        }
        if (!pool.pending) {
          pool.tokens = 0;
          const p = pool;
          p.pending = refill(p, key, perMinute, batch).finally(() => {
            p.pending = undefined;
          });
        }
        const refused = await pool.pending;
        if (refused) return refused;
      }
    },
  };
}
