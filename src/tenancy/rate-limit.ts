/**
 * Per-tenant request rate limit: a token bucket of `ratePerMinute` tokens (the burst) refilled
 * continuously at ratePerMinute/60 tokens per second. The bucket lives in Postgres
 * (RateLimitBucket) so every API instance and Lambda shares it; one statement reads, refills,
 * takes a token and writes back under the row lock, so concurrent requests cannot both spend the
 * last token. (A Redis implementation would satisfy the same interface; Postgres is always there.)
 */
import { BoundedMap } from '../shared/bounded-map.ts';
import type { Prisma } from '../storage/db.ts';

const MAX_CREATED = 100_000;

export type RateDecision =
  | { allowed: true; remaining: number }
  | { allowed: false; retryAfterSeconds: number };

export interface RateLimiter {
  /**
   * Takes `cost` tokens (default 1) from `key`'s bucket of capacity `perMinute`: all of them or,
   * when fewer are available, none.
   */
  take(key: string, perMinute: number, cost?: number): Promise<RateDecision>;
}

/** Pure refill arithmetic, shared by the SQL below and its unit test: seconds until `cost` tokens. */
export function retryAfterSeconds(available: number, perMinute: number, cost = 1): number {
  const perSecond = perMinute / 60;
  return Math.max(1, Math.ceil((cost - available) / perSecond));
}

/** Up to `want` tokens taken at once; `available` = tokens in the bucket before the take. */
export type Reservation = { granted: number; available: number };

export interface ReservingRateLimiter extends RateLimiter {
  /**
   * Takes min(want, whole tokens available) tokens from `key`'s bucket in one statement; none
   * when fewer than `atLeast` (default 1) are available.
   */
  reserve(key: string, perMinute: number, want: number, atLeast?: number): Promise<Reservation>;
}

export function postgresRateLimiter(prisma: Prisma): ReservingRateLimiter {
  /**
   * Buckets this process has made sure exist (see below); bounded, as keys include client
   * addresses. A key dropped here only costs its INSERT ... DO NOTHING again.
   */
  const created = new BoundedMap<string, true>(MAX_CREATED);

  async function reserve(key: string, perMinute: number, want: number, atLeast = 1): Promise<Reservation> {
    const capacity = perMinute;
    const perSecond = perMinute / 60;
    const n = Math.max(1, Math.floor(want));
    const least = Math.max(1, Math.min(n, Math.floor(atLeast)));
    // The statement below locks the bucket row with FOR UPDATE, which locks nothing while the row
    // does not exist yet: two first takers (two processes, or concurrent requests) would both see
    // a full bucket and both spend from it. Creating the full bucket first, on its own, makes
    // every later statement serialise on the row lock.
    if (!created.has(key)) {
      await prisma.$executeRaw`
        INSERT INTO "RateLimitBucket" (key, tokens, "updatedAt") VALUES (${key}, ${capacity}::float8, clock_timestamp())
        ON CONFLICT (key) DO NOTHING`;
      created.set(key, true);
    }
    // `avail` = stored tokens plus the refill since the last update, capped at the capacity
    // (a new bucket starts full). The row is locked by FOR UPDATE inside the CTE, so a
    // concurrent taker re-reads the updated row after this statement commits. `granted` is the
    // whole tokens taken: up to `n`, none when fewer than `least` are available.
    const rows = await prisma.$queryRaw<{ avail: number; granted: number }[]>`
      WITH cur AS (
        SELECT LEAST(${capacity}::float8, COALESCE((
          SELECT tokens + EXTRACT(EPOCH FROM (clock_timestamp() - "updatedAt"))::float8 * ${perSecond}::float8
          FROM "RateLimitBucket" WHERE key = ${key} FOR UPDATE), ${capacity}::float8)) AS avail
      ), g AS (
        SELECT avail, (CASE WHEN FLOOR(avail) >= ${least}::float8
          THEN LEAST(${n}::float8, FLOOR(avail)) ELSE 0 END)::float8 AS granted FROM cur
      )
      INSERT INTO "RateLimitBucket" (key, tokens, "updatedAt")
      SELECT ${key}, avail - granted, clock_timestamp() FROM g
      ON CONFLICT (key) DO UPDATE SET tokens = EXCLUDED.tokens, "updatedAt" = EXCLUDED."updatedAt"
      RETURNING (SELECT avail FROM g) AS avail, (SELECT granted FROM g) AS granted`;
    return { available: Number(rows[0]?.avail ?? 0), granted: Number(rows[0]?.granted ?? 0) };
  }
  return {
    reserve,
    async take(key, perMinute, cost = 1) {
      if (perMinute <= 0 || cost > perMinute) return { allowed: false, retryAfterSeconds: 60 };
      const r = await reserve(key, perMinute, cost, cost);
      if (r.granted >= cost) return { allowed: true, remaining: Math.floor(r.available - cost) };
      return { allowed: false, retryAfterSeconds: retryAfterSeconds(r.available, perMinute, cost) };
    },
  };
}

/** Bucket key of a tenant's API request limit. */
export const requestBucketKey = (tenantId: string) => `tenant:${tenantId}:requests`;

/** Bucket key of the failed authentications from one client address (src/api/use-auth-throttle.ts). */
export const authFailureBucketKey = (address: string) => `auth-failures:${address}`;

/**
 * Deletes buckets untouched for `idleSeconds` (default an hour): a bucket idle longer than one
 * minute has refilled to its capacity, which is also what a missing bucket means, so nothing
 * changes for its key. Keeps the table from growing with every address that ever failed to
 * authenticate. Returns how many were deleted.
 */
export async function sweepIdleBuckets(prisma: Prisma, idleSeconds = 3600): Promise<number> {
  return prisma.$executeRaw`
    DELETE FROM "RateLimitBucket" WHERE "updatedAt" < clock_timestamp() - make_interval(secs => ${idleSeconds}::float8)`;
}
