/**
 * Monthly image quota: images billed this calendar month (UTC; UsageRecord) plus images reserved
 * by the tenant's queued and running jobs must stay within `monthlyImageQuota`. Counting in-flight
 * jobs stops a burst of requests from overshooting the quota before any of them is billed.
 *
 * The check is only sound when it runs in the same transaction as the Job insert, after it, under
 * the tenant's quota lock (`assertQuotaAfterInsert`): otherwise two concurrent requests both read
 * "1 image left" and both insert. The formula lives in SQL (prisma/migrations/*_quota_functions).
 */
import type { Prisma as P } from '../generated/prisma/client.ts';
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
 * Checks the quota of a transaction that has ALREADY inserted its job(s): one statement takes the
 * tenant's quota lock (held until the transaction ends) and then reads usage, which counts the
 * caller's own uncommitted jobs. Throws QUOTA_EXCEEDED (retryAfter = seconds until the next
 * period) when usage is over the quota; the caller's rollback then removes its jobs.
 *
 * Send it as the last statement before COMMIT: the lock serialises one tenant's enqueues from
 * here to the commit, so nothing else should wait inside that window.
 */
export async function assertQuotaAfterInsert(
  tx: P.TransactionClient,
  tenantId: string,
  images: number,
  now: Date = new Date(),
): Promise<void> {
  const { start, end } = billingPeriod(now);
  const rows = await tx.$queryRaw<UsageRow[]>`
    SELECT * FROM harmon_quota_locked_usage(${tenantId}::uuid, ${start.toISOString()}::timestamp)`;
  if (!rows[0]) throw new AppError('NOT_FOUND', `tenant ${tenantId} was not found`);
  const u = toUsage(rows[0], start, end);
  if (u.images + u.inFlightImages <= u.quota) return;
  // What was left before this request's own images.
  const remaining = Math.max(0, u.quota - u.images - (u.inFlightImages - images));
  const retryAfter = Math.max(1, Math.ceil((end.getTime() - now.getTime()) / 1000));
  throw new AppError(
    'QUOTA_EXCEEDED',
    `This request needs ${images} image(s) but only ${remaining} of the monthly quota of ${u.quota} remain; wait for the next period or ask for a higher quota.`,
    { details: { retryAfter, remainingImages: remaining, quota: u.quota } },
  );
}
