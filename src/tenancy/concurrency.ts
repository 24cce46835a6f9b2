/**
 * Per-tenant concurrency limit. Jobs beyond `maxConcurrentJobs` are not rejected: they stay
 * QUEUED until a slot frees. The worker asks `canStart` before it marks a job RUNNING and, when
 * the answer is no, puts the message back (delayed) instead of running it.
 *
 * Called with a transaction client and `lock: true`, it takes a per-tenant advisory lock for the
 * rest of that transaction, so two workers cannot both take the last slot when the same
 * transaction then marks the job RUNNING.
 */
import type { Prisma as P } from '../generated/prisma/client.ts';
import { AppError } from '../shared/errors.ts';
import type { Prisma } from '../storage/db.ts';

type Db = Prisma | P.TransactionClient;

export type SlotState = { running: number; limit: number };

export async function runningSlots(db: Db, tenantId: string): Promise<SlotState> {
  const rows = await db.$queryRaw<{ running: number; limit: number | null }[]>`
    SELECT (SELECT COUNT(*)::int FROM "Job" WHERE "tenantId" = ${tenantId}::uuid AND status = 'RUNNING') AS running,
           (SELECT "maxConcurrentJobs" FROM "Tenant" WHERE id = ${tenantId}::uuid) AS "limit"`;
  const r = rows[0];
  if (!r || r.limit === null) throw new AppError('NOT_FOUND', `tenant ${tenantId} was not found`);
  return { running: Number(r.running), limit: Number(r.limit) };
}

/** True when the tenant has a free slot for one more RUNNING job. */
export async function canStart(db: Db, tenantId: string, options: { lock?: boolean } = {}): Promise<boolean> {
  if (options.lock)
    await db.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${`harmon-slots:${tenantId}`}))`;
  const s = await runningSlots(db, tenantId);
  return s.running < s.limit;
}
