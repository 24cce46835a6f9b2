/**
 * Orphan protection for job outputs. An attempt uploads objects first and records them (Asset
 * rows) later, in a transaction; a worker that dies in between would leave objects nobody points
 * at. So every key is written to `Job.pendingKeys` (committed) BEFORE its upload, and removed in
 * the same transaction that creates its Asset row. Whatever is still pending when the next attempt
 * starts, or when the job ends, belonged to a dead or failed attempt and is deleted.
 *
 *   record(key) -> put(key) -> tx { Asset row + settle(key) }      normal path
 *   record(key) -> put(key) -> (worker dies)                        -> purge on the next attempt
 */
import type { Prisma as P } from '../generated/prisma/client.ts';
import { type Logger, logger as rootLogger } from '../shared/logger.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { Prisma } from '../storage/db.ts';

type Db = Prisma | P.TransactionClient;

/** Appends keys to the job's pending list; must commit before the objects are uploaded. */
export async function recordPending(db: Db, jobId: string, keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  // One atomic UPDATE (array concat), so concurrent writers (preview sink, output upload) never
  // overwrite each other's keys. Raw SQL: a Prisma update would also bump updatedAt.
  await db.$executeRaw`UPDATE "Job" SET "pendingKeys" = "pendingKeys" || ${keys}::text[] WHERE id = ${jobId}::uuid`;
}

/** Removes keys from the pending list (their Asset rows are written in the same transaction). */
export async function settlePending(db: Db, jobId: string, keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  await db.$executeRaw`
    UPDATE "Job" SET "pendingKeys" =
      ARRAY(SELECT k FROM unnest("pendingKeys") AS k WHERE NOT (k = ANY(${keys}::text[])))
    WHERE id = ${jobId}::uuid`;
}

/**
 * Deletes the objects of the job's pending keys and clears them. Only call it when no live
 * attempt of the job can still be uploading: at the start of an attempt (the worker holds the
 * job's lock) or once the job is terminal. A key an Asset row records is kept (never happens when
 * the protocol above is followed; cheap insurance against deleting a result). Returns the keys
 * whose objects were deleted; a failed delete stays pending for the next purge.
 */
export async function purgePending(
  deps: { prisma: Prisma; blobStore: BlobStore; log?: Logger },
  jobId: string,
): Promise<string[]> {
  const row = await deps.prisma.job.findUnique({ where: { id: jobId }, select: { pendingKeys: true } });
  const keys = row?.pendingKeys ?? [];
  if (keys.length === 0) return [];
  const recorded = new Set(
    (await deps.prisma.asset.findMany({ where: { key: { in: keys } }, select: { key: true } })).map(
      (a) => a.key,
    ),
  );
  const deleted: string[] = [];
  const done: string[] = [...recorded];
  for (const key of keys) {
    if (recorded.has(key)) continue;
    try {
      await deps.blobStore.delete(key); // S3 delete of a missing key succeeds: idempotent
      deleted.push(key);
      done.push(key);
    } catch (e) {
      (deps.log ?? rootLogger).warn({ err: e, jobId, key }, 'could not delete an orphaned upload');
    }
  }
  await settlePending(deps.prisma, jobId, done);
  if (deleted.length > 0)
    (deps.log ?? rootLogger).info({ jobId, count: deleted.length }, 'deleted uploads of an earlier attempt');
  return deleted;
}

/** purgePending for cleanup paths that must never fail a finished job: errors are logged only. */
export async function purgeQuietly(
  deps: { prisma: Prisma; blobStore: BlobStore; log: Logger },
  jobId: string,
): Promise<void> {
  await purgePending(deps, jobId).catch((e: unknown) =>
    deps.log.warn({ err: e, jobId }, 'could not purge pending uploads; the retention sweep retries'),
  );
}
