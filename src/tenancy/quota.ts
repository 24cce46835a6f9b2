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

export async function quotaUsage(prisma: Db, tenantId: string, now: Date = new Date()): Promise<QuotaUsage> {
  const { start, end } = billingPeriod(now);
  const tenant = await prisma.tenant.findUnique({
    where: { id: tenantId },
    select: { monthlyImageQuota: true },
  });
  if (!tenant) throw new AppError('NOT_FOUND', `tenant ${tenantId} was not found`);
  const sums = await prisma.usageRecord.aggregate({
    where: { tenantId, at: { gte: start } },
    _sum: { images: true, tokens: true, gpuMs: true },
  });
  const totals = {
    images: sums._sum.images ?? 0,
    tokens: sums._sum.tokens ?? 0,
    gpuMs: sums._sum.gpuMs ?? 0,
  };
  // Aggregated in SQL: a tenant may have thousands of queued jobs.
  const [row] = await prisma.$queryRaw<{ images: number }[]>`
    SELECT COALESCE(SUM(COALESCE((input->>'count')::int, 1)), 0)::int AS images FROM "Job"
    WHERE "tenantId" = ${tenantId}::uuid AND kind = 'GENERATE' AND status IN ('QUEUED', 'RUNNING')`;
  const inFlightImages = Number(row?.images ?? 0);
  const quota = tenant.monthlyImageQuota;
  return {
    periodStart: start,
    periodEnd: end,
    quota,
    ...totals,
    inFlightImages,
    remainingImages: Math.max(0, quota - totals.images - inFlightImages),
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
