/**
 * Enforces `Tenant.retentionDays`: a periodic, bounded sweep (run by the worker service) that
 * deletes what a tenant stored longer than its retention allows, oldest first:
 *
 *   - assets of finished jobs (S3 object, then the Asset row); the Job row stays as history with
 *     `assetsPurgedAt` set, so `Job.images` resolves to [] while status, params and text remain;
 *   - uploads (input images) whose presigned PUT has expired, unless a queued or running job
 *     still needs them (S3 object, then the Upload row);
 *   - pending keys of finished jobs (pending-uploads.ts): objects whose cleanup failed earlier;
 *   - rate-limit buckets idle for an hour (src/tenancy/rate-limit.ts: a missing bucket is a full
 *     one), which otherwise accumulate one row per client address that ever failed to authenticate.
 *
 * Every step is idempotent (S3 deletes of missing keys succeed, row deletes by id), so two worker
 * processes sweeping at once only duplicate work. The object goes first and its row second: a row
 * may briefly name a deleted object (a dead image link), never the reverse (an object no row
 * knows about, i.e. an orphan). An object whose delete fails keeps its row for the next sweep.
 */
import { type Logger, logger as rootLogger } from '../shared/logger.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { Prisma } from '../storage/db.ts';
import { sweepIdleBuckets } from '../tenancy/rate-limit.ts';
import { purgePending } from './pending-uploads.ts';

export interface RetentionOptions {
  /** Upper bound of rows handled per kind (assets, uploads, jobs with pending keys) per sweep. */
  batch?: number;
  now?: Date;
}

export interface RetentionResult {
  /** Asset rows (and their objects) deleted. */
  assets: number;
  /** Upload rows (and their objects) deleted. */
  uploads: number;
  /** Orphaned pending objects of finished jobs deleted. */
  pending: number;
  /** Jobs whose assets were (partly) purged in this sweep. */
  jobIds: string[];
  /** Idle rate-limit buckets deleted. */
  buckets: number;
}

type Deps = { prisma: Prisma; blobStore: BlobStore; log?: Logger };

export async function sweepRetention(deps: Deps, options: RetentionOptions = {}): Promise<RetentionResult> {
  const now = options.now ?? new Date();
  const batch = Math.max(1, options.batch ?? 200);
  const assets = await purgeAssets(deps, now, batch);
  const uploads = await purgeUploads(deps, now, batch);
  const pending = await purgeFinishedPending(deps, batch);
  const buckets = await sweepIdleBuckets(deps.prisma);
  const result = { assets: assets.deleted, uploads, pending, jobIds: assets.jobIds, buckets };
  if (assets.deleted + uploads + pending + buckets > 0)
    (deps.log ?? rootLogger).info(result, 'retention sweep');
  return result;
}

/** Deletes objects one by one; returns the ids whose object is gone (a failure keeps the row). */
async function deleteObjects<T extends { id: string; key: string }>(deps: Deps, rows: T[]): Promise<T[]> {
  const gone: T[] = [];
  for (const row of rows) {
    try {
      await deps.blobStore.delete(row.key);
      gone.push(row);
    } catch (e) {
      (deps.log ?? rootLogger).warn({ err: e, key: row.key }, 'retention: could not delete an object');
    }
  }
  return gone;
}

// Timestamps are `timestamp(3)` holding UTC; an ISO string cast to ::timestamp drops the 'Z' and
// keeps the UTC wall clock, which is exactly what the columns store.
async function purgeAssets(
  deps: Deps,
  now: Date,
  batch: number,
): Promise<{ deleted: number; jobIds: string[] }> {
  const rows = await deps.prisma.$queryRaw<{ id: string; key: string; jobId: string | null }[]>`
    SELECT a.id::text AS id, a.key, a."jobId"::text AS "jobId"
    FROM "Asset" a
    JOIN "Tenant" t ON t.id = a."tenantId"
    LEFT JOIN "Job" j ON j.id = a."jobId"
    WHERE a."createdAt" + make_interval(days => t."retentionDays") < ${now.toISOString()}::timestamp
      AND (j.id IS NULL OR j.status IN ('SUCCEEDED', 'FAILED', 'CANCELED'))
    ORDER BY a."createdAt"
    LIMIT ${batch}`;
  if (rows.length === 0) return { deleted: 0, jobIds: [] };
  const gone = await deleteObjects(deps, rows);
  const jobIds = [...new Set(gone.map((r) => r.jobId).filter((id): id is string => id !== null))];
  await deps.prisma.$transaction([
    deps.prisma.asset.deleteMany({ where: { id: { in: gone.map((r) => r.id) } } }),
    deps.prisma.job.updateMany({ where: { id: { in: jobIds } }, data: { assetsPurgedAt: now } }),
  ]);
  return { deleted: gone.length, jobIds };
}

async function purgeUploads(deps: Deps, now: Date, batch: number): Promise<number> {
  const nowTs = now.toISOString();
  const rows = await deps.prisma.$queryRaw<{ id: string; key: string }[]>`
    SELECT u.id::text AS id, u.key
    FROM "Upload" u
    JOIN "Tenant" t ON t.id = u."tenantId"
    WHERE u."expiresAt" < ${nowTs}::timestamp
      AND u."createdAt" + make_interval(days => t."retentionDays") < ${nowTs}::timestamp
      AND NOT EXISTS (
        SELECT 1 FROM "Job" j
        WHERE j."tenantId" = u."tenantId" AND j.kind = 'DESCRIBE' AND j.status IN ('QUEUED', 'RUNNING')
          AND j.input->'image'->>'uploadId' = u.id::text)
    ORDER BY u."createdAt"
    LIMIT ${batch}`;
  if (rows.length === 0) return 0;
  const gone = await deleteObjects(deps, rows);
  const r = await deps.prisma.upload.deleteMany({ where: { id: { in: gone.map((x) => x.id) } } });
  return r.count;
}

/** Finished jobs still listing pending keys: their end-of-job purge failed (or never ran). */
async function purgeFinishedPending(deps: Deps, batch: number): Promise<number> {
  const jobs = await deps.prisma.$queryRaw<{ id: string }[]>`
    SELECT id::text AS id FROM "Job"
    WHERE status IN ('SUCCEEDED', 'FAILED', 'CANCELED') AND cardinality("pendingKeys") > 0
    LIMIT ${batch}`;
  let deleted = 0;
  for (const j of jobs) deleted += (await purgePending(deps, j.id)).length;
  return deleted;
}

/** Runs the sweep every `intervalMs` (default 10 min; first run soon after start) until stopped. */
export function startRetentionSweeper(
  deps: Deps,
  options: RetentionOptions & { intervalMs?: number; firstRunMs?: number } = {},
): { stop(): void } {
  let running = false;
  const run = () => {
    if (running) return; // a slow sweep (many deletes) never overlaps the next tick
    running = true;
    sweepRetention(deps, { batch: options.batch })
      .catch((e: unknown) => (deps.log ?? rootLogger).warn({ err: e }, 'retention sweep failed'))
      .finally(() => {
        running = false;
      });
  };
  const first = setTimeout(run, options.firstRunMs ?? 30_000);
  const timer = setInterval(run, options.intervalMs ?? 600_000);
  first.unref();
  timer.unref();
  return {
    stop: () => {
      clearTimeout(first);
      clearInterval(timer);
    },
  };
}
