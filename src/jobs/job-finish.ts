/**
 * How a claimed attempt ends (worker.ts decides which): SUCCEEDED with its results, FAILED or
 * CANCELED, or handed back to QUEUED for another attempt. Each is one transaction on the locked
 * Job row; objects a non-successful ending leaves behind are deleted (pending-uploads.ts).
 */

import { appendEvent } from '../events/event-log.ts';
import { isTerminalStatus } from '../events/job-events.ts';
import type { Job } from '../generated/prisma/client.ts';
import type { Logger } from '../shared/logger.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { Prisma } from '../storage/db.ts';
import type { JobOutcome } from './handlers/context.ts';
import { lockJob, terminateJob } from './job-state.ts';
import { purgePending, settlePending } from './pending-uploads.ts';

export interface FinishDeps {
  prisma: Prisma;
  blobStore: BlobStore;
  log: Logger;
}

/** Assets + UsageRecord + SUCCEEDED (with RESULT event) in one transaction; false if already ended. */
export async function succeed(deps: FinishDeps, job: Job, outcome: JobOutcome): Promise<boolean> {
  const keys = outcome.assets.map((a) => a.key);
  const done = await deps.prisma.$transaction(async (tx) => {
    const current = await lockJob(tx, job.tenantId, job.id);
    if (isTerminalStatus(current.status)) return false;
    if (outcome.assets.length > 0) {
      await tx.asset.createMany({
        data: outcome.assets.map((a) => ({ ...a, tenantId: job.tenantId, jobId: job.id })),
      });
      await settlePending(tx, job.id, keys);
    }
    await tx.usageRecord.create({ data: { tenantId: job.tenantId, jobId: job.id, ...outcome.usage } });
    await terminateJob(tx, {
      jobId: job.id,
      tenantId: job.tenantId,
      status: 'SUCCEEDED',
      locked: current,
      data: {
        text: outcome.text ?? null,
        gpuMs: outcome.usage.gpuMs,
        ...(outcome.stageMs ? { stageMs: outcome.stageMs } : {}),
      },
      result: {
        assetIds: outcome.assets.map((a) => a.id),
        ...(outcome.text !== undefined ? { text: outcome.text } : {}),
      },
    });
    return true;
  });
  if (!done) {
    // Someone ended the job meanwhile: our objects (still pending) are orphans, remove them.
    await purgeQuietly(deps, job.id);
    deps.log.info('job already finished elsewhere; result discarded');
  }
  return done;
}

export async function end(
  deps: FinishDeps,
  job: Job,
  status: 'FAILED' | 'CANCELED',
  error: { code: string; message: string },
): Promise<void> {
  await deps.prisma.$transaction((tx) =>
    terminateJob(tx, { jobId: job.id, tenantId: job.tenantId, status, error }),
  );
  // No later attempt will come to clean up what this one uploaded.
  await purgeQuietly(deps, job.id);
}

/** RUNNING -> QUEUED (with a STATUS event) so the next delivery starts it cleanly. */
export async function requeue(deps: FinishDeps, job: Job, why: string): Promise<void> {
  await deps.prisma.$transaction(async (tx) => {
    const current = await lockJob(tx, job.tenantId, job.id);
    if (current.status !== 'RUNNING') return;
    await tx.job.update({ where: { id: job.id }, data: { status: 'QUEUED', progress: 0 } });
    await appendEvent(tx, {
      jobId: job.id,
      tenantId: job.tenantId,
      type: 'STATUS',
      status: 'QUEUED',
      payload: { stage: why },
    });
  });
}

/** Cleanup must never turn a finished job into a failed attempt: errors are logged only. */
export async function purgeQuietly(deps: FinishDeps, jobId: string): Promise<void> {
  await purgePending(deps, jobId).catch((e: unknown) =>
    deps.log.warn({ err: e, jobId }, 'could not purge pending uploads; the retention sweep retries'),
  );
}
