/**
 * Turns pipeline events into durable JobEvents while a job runs: PROGRESS for every MAR step,
 * PREVIEW (PNG uploaded with role PREVIEW, then its Asset row and event), TEXT_DELTA for each
 * non-empty token delta. Writes are chained so seq order equals emission order. Each write is a
 * fenced lifecycle transition that reads the job row under its lock, which is how the worker
 * learns of a cancel request (the one cancel channel: the row, read by every write) and of having
 * lost the job to another attempt.
 */
import type { PipelineEvent } from '../harmon/events.ts';
import type { Logger } from '../shared/logger.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { Prisma } from '../storage/db.ts';
import { uploadPng } from './handlers/context.ts';
import { JobLostError, type Run, recordPreview, recordProgress, recordText } from './job-lifecycle.ts';

export interface ProgressSink {
  onEvent(event: PipelineEvent): void;
  /** Waits for every write issued so far; rejects with the first write error. */
  drain(): Promise<void>;
}

export function createProgressSink(opts: {
  prisma: Prisma;
  blobStore: BlobStore;
  run: Run;
  log: Logger;
  onCancelRequested: () => void;
  onLost: (e: JobLostError) => void;
  onWriteError: (e: unknown) => void;
}): ProgressSink {
  const { prisma, blobStore, run } = opts;
  let chain: Promise<void> = Promise.resolve();
  let failed: unknown;

  const write = (fn: () => Promise<{ cancelRequested: boolean } | undefined>) => {
    chain = chain.then(async () => {
      if (failed !== undefined) return;
      try {
        if ((await fn())?.cancelRequested) opts.onCancelRequested();
      } catch (e) {
        failed = e;
        if (e instanceof JobLostError) opts.onLost(e);
        else opts.onWriteError(e);
      }
    });
  };

  return {
    onEvent(event) {
      switch (event.type) {
        case 'step':
          write(() => recordProgress(prisma, run, event.step, event.totalSteps));
          break;
        case 'preview':
          write(async () => {
            const image = event.images[0];
            if (!image) return undefined;
            const name = `${run.job.id}-step-${event.step}.png`;
            const draft = await uploadPng(
              { prisma, blobStore, job: run.job },
              'previews',
              name,
              image,
              'PREVIEW',
            );
            return recordPreview(prisma, run, draft, event.step, event.totalSteps);
          });
          break;
        case 'token':
          if (event.text.length > 0) write(() => recordText(prisma, run, event.text));
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
