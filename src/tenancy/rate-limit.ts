/**
 * Per-tenant request rate limit: a token bucket of `ratePerMinute` tokens (the burst) refilled
 * continuously at ratePerMinute/60 tokens per second. The bucket lives in Postgres
 * (RateLimitBucket) so every API instance and Lambda shares it; one statement reads, refills,
 * takes a token and writes back under the row lock, so concurrent requests cannot both spend the
 * last token. (A Redis implementation would satisfy the same interface; Postgres is always there.)
 */
import type { Prisma } from '../storage/db.ts';

export type RateDecision =
  | { allowed: true; remaining: number }
  | { allowed: false; retryAfterSeconds: number };

export interface RateLimiter {
  /** Takes one token from `key`'s bucket of capacity `perMinute`. */
  take(key: string, perMinute: number): Promise<RateDecision>;
}

/** Pure refill arithmetic, shared by the SQL below and its unit test. */
export function retryAfterSeconds(available: number, perMinute: number): number {
  const perSecond = perMinute / 60;
  return Math.max(1, Math.ceil((1 - available) / perSecond));
}

export function postgresRateLimiter(prisma: Prisma): RateLimiter {
  return {
    async take(key, perMinute) {
      if (perMinute <= 0) return { allowed: false, retryAfterSeconds: 60 };
      const capacity = perMinute;
      const perSecond = perMinute / 60;
      // `avail` = stored tokens plus the refill since the last update, capped at the capacity
      // (a new bucket starts full). The row is locked by FOR UPDATE inside the CTE, so a
      // concurrent taker re-reads the updated row after this statement commits.
      const rows = await prisma.$queryRaw<{ tokens: number; avail: number }[]>`
        WITH cur AS (
          SELECT LEAST(${capacity}::float8, COALESCE((
            SELECT tokens + EXTRACT(EPOCH FROM (clock_timestamp() - "updatedAt"))::float8 * ${perSecond}::float8
            FROM "RateLimitBucket" WHERE key = ${key} FOR UPDATE), ${capacity}::float8)) AS avail
        )
        INSERT INTO "RateLimitBucket" (key, tokens, "updatedAt")
        SELECT ${key}, CASE WHEN avail >= 1 THEN avail - 1 ELSE avail END, clock_timestamp() FROM cur
        ON CONFLICT (key) DO UPDATE SET tokens = EXCLUDED.tokens, "updatedAt" = EXCLUDED."updatedAt"
        RETURNING tokens, (SELECT avail FROM cur) AS avail`;
      const avail = Number(rows[0]?.avail ?? 0);
      if (avail >= 1) return { allowed: true, remaining: Math.floor(avail - 1) };
      return { allowed: false, retryAfterSeconds: retryAfterSeconds(avail, perMinute) };
    },
  };
}

/** Bucket key of a tenant's API request limit. */
export const requestBucketKey = (tenantId: string) => `tenant:${tenantId}:requests`;
