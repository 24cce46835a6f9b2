/**
 * Turns pipeline events into durable JobEvents while a job runs: PROGRESS for every MAR step,
 * PREVIEW (PNG uploaded with role PREVIEW, Asset row that settles its pending key, event with its id), TEXT_DELTA for each
 * non-empty token delta. Writes are chained so seq order equals emission order. Each PROGRESS
 * write also returns the job row, which doubles as the cheap between-steps cancel poll.
 */

import { appendEvent } from '../events/event-log.ts';
import type { Job } from '../generated/prisma/client.ts';
import type { PipelineEvent } from '../harmon/events.ts';
import type { Logger } from '../shared/logger.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { Prisma } from '../storage/db.ts';
import { uploadPng } from './handlers/context.ts';
import { settlePending } from './pending-uploads.ts';

export interface ProgressSink {
  onEvent(event: PipelineEvent): void;
  /** Waits for every write issued so far; rejects with the first write error. */
  drain(): Promise<void>;
}

export function createProgressSink(opts: {
  prisma: Prisma;
  blobStore: BlobStore;
  job: Job;
  log: Logger;
  onCancelRequested: () => void;
  onWriteError: (e: unknown) => void;
}): ProgressSink {
  const { prisma, blobStore, job } = opts;
  const base = { jobId: job.id, tenantId: job.tenantId, status: 'RUNNING' as const };
  let chain: Promise<void> = Promise.resolve();
  let failed: unknown;

  const write = (fn: () => Promise<void>) => {
    chain = chain.then(async () => {
      if (failed !== undefined) return;
      try {
        await fn();
      } catch (e) {
        failed = e;
        opts.onWriteError(e);
      }
    });
  };

  return {
    onEvent(event) {
      switch (event.type) {
        case 'step':
          write(async () => {
            const row = await prisma.$transaction(async (tx) => {
              await appendEvent(tx, {
                ...base,
                type: 'PROGRESS',
                payload: { step: event.step, totalSteps: event.totalSteps, stage: 'mar' },
              });
              return tx.job.update({
                where: { id: job.id },
                data: { progress: event.step / event.totalSteps },
                select: { cancelRequested: true },
              });
            });
            if (row.cancelRequested) opts.onCancelRequested();
          });
          break;
        case 'preview':
          write(async () => {
            const image = event.images[0];
            if (!image) return;
            const draft = await uploadPng(
              { prisma, blobStore, job },
              'previews',
              `${job.id}-step-${event.step}.png`,
              image,
              'PREVIEW',
            );
            await prisma.$transaction(async (tx) => {
              await tx.asset.create({ data: { ...draft, tenantId: job.tenantId, jobId: job.id } });
              await settlePending(tx, job.id, [draft.key]);
              await appendEvent(tx, {
                ...base,
                type: 'PREVIEW',
                payload: { step: event.step, totalSteps: event.totalSteps, previewAssetId: draft.id },
              });
            });
          });
          break;
        case 'token':
          if (event.text.length > 0)
            write(
              async () =>
                void (await prisma.$transaction((tx) =>
                  appendEvent(tx, { ...base, type: 'TEXT_DELTA', payload: { textDelta: event.text } }),
                )),
            );
          break;
        default:
          break;
      }
    },
    async drain() {
      await chain;
      if (failed !== undefined) throw failed;
    },
  };
}
