/**
 * Monthly image quota: images billed this calendar month (UTC; UsageRecord) plus images reserved
 * by the tenant's queued and running jobs must stay within `monthlyImageQuota`. Counting in-flight
 * jobs stops a burst of requests from overshooting the quota before any of them is billed.
 *
 * The check is only sound when it runs in the same transaction as the Job insert, after it, under
 * the tenant's quota lock: otherwise two concurrent requests both read "1 image left" and both
 * insert. Postgres runs it at COMMIT (`armQuotaCheck`); the formula lives in SQL
 * (prisma/migrations/*_quota_functions).
 */
import { Prisma as P } from '../generated/prisma/client.ts';
import { AppError } from '../shared/errors.ts';
import type { Prisma } from '../storage/db.ts';

/** A client or a transaction client: the quota reads must see the caller's transaction. */
type Db = Prisma | P.TransactionClient;

export type QuotaUsage = {
  periodStart: Date;
  periodEnd: Date;
  quota: number;
  images: number;
  tokens: number;
  gpuMs: number;
  inFlightImages: number;
  remainingImages: number;
};

/** First instant of the UTC month containing `now`, and of the next one. */
export function billingPeriod(now: Date = new Date()): { start: Date; end: Date } {
  const start = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  const end = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
  return { start, end };
}

/** Images a job input will produce: generate's `count` (default 1); describe produces none. */
export function imagesOf(kind: 'GENERATE' | 'DESCRIBE', input: { count?: unknown }): number {
  if (kind !== 'GENERATE') return 0;
  return typeof input.count === 'number' && input.count > 0 ? input.count : 1;
}

type UsageRow = { quota: number; images: bigint; tokens: bigint; gpuMs: bigint; inFlightImages: bigint };

function toUsage(row: UsageRow, start: Date, end: Date): QuotaUsage {
  const quota = row.quota;
  const images = Number(row.images);
  const inFlightImages = Number(row.inFlightImages);
  return {
    periodStart: start,
    periodEnd: end,
    quota,
    images,
    tokens: Number(row.tokens),
    gpuMs: Number(row.gpuMs),
    inFlightImages,
    remainingImages: Math.max(0, quota - images - inFlightImages),
  };
}

/**
 * One statement: the tenant's quota, this period's billed usage and the images its queued/running
 * jobs reserve (SQL function harmon_quota_usage, the formula's one home). NOT_FOUND for no tenant.
 */
export async function quotaUsage(prisma: Db, tenantId: string, now: Date = new Date()): Promise<QuotaUsage> {
  const { start, end } = billingPeriod(now);
  // `at` is timestamp(3) holding UTC: an ISO string cast to ::timestamp keeps the UTC wall clock.
  const rows = await prisma.$queryRaw<UsageRow[]>`
    SELECT * FROM harmon_quota_usage(${tenantId}::uuid, ${start.toISOString()}::timestamp)`;
  if (!rows[0]) throw new AppError('NOT_FOUND', `tenant ${tenantId} was not found`);
  return toUsage(rows[0], start, end);
}

/**
 * A one-row query that arms the quota check for the GENERATE jobs its transaction inserts after
 * it has run: Postgres runs the check at COMMIT (trigger "Job_quota_check",
 * prisma/migrations/*_quota_functions) under the tenant's quota lock, counting this transaction's
 * jobs; over the quota the COMMIT fails and nothing is written (`quotaExceededFrom` turns that
 * failure into QUOTA_EXCEEDED). At commit, so the lock serialises one tenant's enqueues only for
 * the commit itself: a check sent as a statement would hold it across a client round trip (and a
 * busy event loop) until COMMIT. enqueueJob runs it as a CTE of its Job insert (no round trip of
 * its own). Transaction-local: the next transaction on the same pooled connection is unarmed.
 */
export function armQuotaCheckSql(now: Date = new Date()): P.Sql {
  const { start } = billingPeriod(now);
  return P.sql`SELECT set_config('harmon.quota_period_start', ${start.toISOString()}, true) AS armed`;
}

/**
 * QUOTA_EXCEEDED (retryAfter = seconds until the next period) for the COMMIT failure of an armed
 * check; undefined for any other error. `images` is what the refused request asked for.
 */
export function quotaExceededFrom(e: unknown, images: number, now: Date = new Date()): AppError | undefined {
  // A failed COMMIT surfaces as the adapter's error; inside a query Prisma wraps it in meta.
  type Cause = { message?: unknown; detail?: unknown };
  const err = e as { cause?: Cause; meta?: { driverAdapterError?: { cause?: Cause } } } | null;
  const cause = err?.cause ?? err?.meta?.driverAdapterError?.cause;
  if (cause?.message !== 'harmon_quota_exceeded' || typeof cause.detail !== 'string') return undefined;
  const { quota, used } = JSON.parse(cause.detail) as { quota: number; used: number };
  // What was left before this request's own images.
  const remaining = Math.max(0, quota - (used - images));
  const { end } = billingPeriod(now);
  const retryAfter = Math.max(1, Math.ceil((end.getTime() - now.getTime()) / 1000));
  return new AppError(
    'QUOTA_EXCEEDED',
    `This request needs ${images} image(s) but only ${remaining} of the monthly quota of ${quota} remain; wait for the next period or ask for a higher quota.`,
    { details: { retryAfter, remainingImages: remaining, quota }, cause: e },
  );
}
