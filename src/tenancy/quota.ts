/**
 * Monthly image quota: images billed this calendar month (UTC; UsageRecord) plus images reserved
 * by the tenant's queued and running jobs must stay within `monthlyImageQuota`. Counting in-flight
 * jobs stops a burst of requests from overshooting the quota before any of them is billed.
 *
 * The check is only sound when it runs in the same transaction as the Job insert and under
 * `lockTenantQuota`: otherwise two concurrent requests both read "1 image left" and both insert
 * (enqueueJob does exactly that).
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

/**
 * Serialises quota check + Job insert per tenant until the caller's transaction ends. Advisory,
 * not `SELECT … FOR UPDATE` on the Tenant row: that row lock would also conflict with the FK
 * share locks every insert of the tenant's other rows takes.
 */
export async function lockTenantQuota(tx: P.TransactionClient, tenantId: string): Promise<void> {
  await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${`harmon-quota:${tenantId}`}, 0))`;
}

/**
 * One statement (one round trip, which matters inside enqueue's locked section): the tenant's
 * quota, this period's billed usage and the images its queued/running jobs reserve. Aggregates
 * without GROUP BY always yield one row, so the laterals never drop the tenant row; no row means
 * no tenant. Sums are bigint in Postgres (gpuMs can pass 2^31 in a month), read back via Number.
 */
export async function quotaUsage(prisma: Db, tenantId: string, now: Date = new Date()): Promise<QuotaUsage> {
  const { start, end } = billingPeriod(now);
  // `at` is timestamp(3) holding UTC: an ISO string cast to ::timestamp keeps the UTC wall clock.
  const rows = await prisma.$queryRaw<
    { quota: number; images: bigint; tokens: bigint; gpuMs: bigint; inFlightImages: bigint }[]
  >`
    SELECT t."monthlyImageQuota" AS quota, u.images, u.tokens, u."gpuMs", f.images AS "inFlightImages"
    FROM "Tenant" t
    CROSS JOIN LATERAL (
      SELECT COALESCE(SUM(images), 0)::bigint AS images, COALESCE(SUM(tokens), 0)::bigint AS tokens,
             COALESCE(SUM("gpuMs"), 0)::bigint AS "gpuMs"
      FROM "UsageRecord" WHERE "tenantId" = t.id AND at >= ${start.toISOString()}::timestamp) u
    -- Aggregated in SQL: a tenant may have thousands of queued jobs.
    CROSS JOIN LATERAL (
      SELECT COALESCE(SUM(COALESCE((input->>'count')::int, 1)), 0)::bigint AS images FROM "Job"
      WHERE "tenantId" = t.id AND kind = 'GENERATE' AND status IN ('QUEUED', 'RUNNING')) f
    WHERE t.id = ${tenantId}::uuid`;
  const row = rows[0];
  if (!row) throw new AppError('NOT_FOUND', `tenant ${tenantId} was not found`);
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

/** Throws QUOTA_EXCEEDED (retryAfter = seconds until the next period) when `images` do not fit. */
export async function assertQuota(
  prisma: Db,
  tenantId: string,
  images: number,
  now: Date = new Date(),
): Promise<void> {
  if (images <= 0) return;
  const u = await quotaUsage(prisma, tenantId, now);
  if (images > u.remainingImages) {
    const retryAfter = Math.max(1, Math.ceil((u.periodEnd.getTime() - now.getTime()) / 1000));
    throw new AppError(
      'QUOTA_EXCEEDED',
      `This request needs ${images} image(s) but only ${u.remainingImages} of the monthly quota of ${u.quota} remain; wait for the next period or ask for a higher quota.`,
      { details: { retryAfter, remainingImages: u.remainingImages, quota: u.quota } },
    );
  }
}
