/**
 * Everything a worker process runs, in one start/stop pair: the queue consumer (worker.ts), the
 * webhook dispatcher, the queue reconciler (reconcile.ts) and the retention sweep (retention.ts).
 * Used by `harmon worker` and by the in-process worker of `harmon serve`; the caller owns the
 * database, blob store and runner it passes in.
 */

import type { FetchPolicy } from '../net/safe-fetch.ts';
import { IMAGE_BYTES } from '../shared/images.ts';
import type { Logger } from '../shared/logger.ts';
import { logger as rootLogger } from '../shared/logger.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { Prisma } from '../storage/db.ts';
import { canStart } from '../tenancy/concurrency.ts';
import { createJobQueue, type QueueBackendOptions } from './queue/create-queue.ts';
import { DEFAULT_QUEUE_POLICY, type HarmonJobPayload, type JobQueue } from './queue/port.ts';
import { startReconciler } from './reconcile.ts';
import { startRetentionSweeper } from './retention.ts';
import type { JobRunner } from './runner.ts';
import { startWebhookDispatcher, type WebhookOptions } from './webhooks.ts';
import { type RunningWorker, startWorker, type WorkerDeps } from './worker.ts';

export interface WorkerServiceOptions {
  prisma: Prisma;
  databaseUrl: string;
  blobStore: BlobStore;
  runner: JobRunner;
  /** Queue backend (same options as the API's producer), or a queue instance to share. */
  queue: QueueBackendOptions | JobQueue<HarmonJobPayload>;
  log?: Logger;
  /** Jobs (or, with batching, batches) running at once; default 1. */
  concurrency?: number;
  /** Generate jobs sharing one MAR loop (config WORKER_MAX_BATCH); default 1: no batching. */
  maxBatch?: number;
  maxImageBytes?: number;
  fetchPolicy?: FetchPolicy;
  webhooks?: false | (WebhookOptions & { intervalMs?: number });
  /** The queue check (reconcile.ts): default every 5 s, lost messages every 12th pass. */
  reconciler?: false | { intervalMs?: number; lostEvery?: number; staleSeconds?: number };
  /** Tenant retention enforcement (default: every 10 minutes, 200 rows per kind per sweep). */
  retention?: false | { intervalMs?: number; firstRunMs?: number; batch?: number };
  worker?: Partial<Pick<WorkerDeps, 'slotRetrySeconds' | 'canStart' | 'heartbeatMs' | 'gatherMs'>>;
}

export interface WorkerService {
  queue: JobQueue<HarmonJobPayload>;
  worker: RunningWorker;
  /** Stops pulling; 'finish' lets the running job end within timeoutMs, then releases it. */
  stop(options?: { mode?: 'finish' | 'release'; timeoutMs?: number }): Promise<void>;
}

export async function startWorkerService(o: WorkerServiceOptions): Promise<WorkerService> {
  const log = (o.log ?? rootLogger).child({ component: 'worker' });
  const ownsQueue = !('send' in o.queue);
  const queue = 'send' in o.queue ? o.queue : createJobQueue<HarmonJobPayload>(o.queue);
  await queue.start();
  const policy = { ...DEFAULT_QUEUE_POLICY, ...('send' in o.queue ? undefined : o.queue.policy) };
  const worker = startWorker(
    {
      prisma: o.prisma,
      databaseUrl: o.databaseUrl,
      queue,
      blobStore: o.blobStore,
      runner: o.runner,
      log,
      canStart: (tx, tenantId) => canStart(tx, tenantId, { lock: true }),
      maxAttempts: policy.maxAttempts,
      leaseSeconds: policy.visibilityTimeoutSeconds,
      images: { maxBytes: o.maxImageBytes ?? IMAGE_BYTES.default, fetchPolicy: o.fetchPolicy },
      maxBatch: o.maxBatch,
      ...o.worker,
    },
    { concurrency: o.concurrency ?? 1 },
  );
  const hooks =
    o.webhooks === false
      ? undefined
      : startWebhookDispatcher(o.prisma, { fetchPolicy: o.fetchPolicy, log, ...o.webhooks });
  const reconciler =
    o.reconciler === false
      ? undefined
      : startReconciler(
          {
            prisma: o.prisma,
            queue,
            leaseSeconds: policy.visibilityTimeoutSeconds,
            running: worker.running,
            log,
          },
          { ...o.reconciler },
        );
  const retention =
    o.retention === false
      ? undefined
      : startRetentionSweeper({ prisma: o.prisma, blobStore: o.blobStore, log }, { ...o.retention });
  return {
    queue,
    worker,
    async stop(options = {}) {
      retention?.stop();
      await reconciler?.stop();
      await worker.stop(options);
      await hooks?.stop();
      if (ownsQueue) await queue.close();
    },
  };
}
