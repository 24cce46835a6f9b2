/**
 * The job worker (body of `harmon worker` and of the in-process worker of `harmon serve`):
 * pulls `{jobId, tenantId}` messages from the queue port and runs each job exactly once in effect.
 *
 *   message -> load Job -> terminal? ack (re-delivery never makes a second result)
 *           -> advisory lock (busy: another live worker has it -> retry later)
 *           -> claim tx: tenant slot free? RUNNING + attempts++ + STATUS event
 *           -> handler (engine in its worker thread; events -> progress-sink; abort on cancel /
 *              SIGTERM / lost lease)
 *           -> outputs to S3 (keys recorded as pending first) -> ONE tx: Assets + UsageRecord +
 *              final status + RESULT/STATUS events (job-finish.ts)
 *
 * Failures: client input (bad input, unknown upload, refused URL, undecodable image) -> FAILED at
 * once and the message is acked; anything else -> back to QUEUED and thrown, so the queue retries
 * with backoff, and FAILED on the last attempt. Shutdown or a lost lease -> back to QUEUED and the
 * message released.
 */
import type { Job } from '../generated/prisma/client.ts';
import { AppError, isAppError } from '../shared/errors.ts';
import { IMAGE_BYTES } from '../shared/images.ts';
import { type Logger, logger as rootLogger } from '../shared/logger.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { Prisma } from '../storage/db.ts';
import { appendEvent, type Tx } from './event-log.ts';
import { isTerminalStatus } from './events.ts';
import type { HandlerContext as JobHandlerContext, JobOutcome } from './handlers/context.ts';
import { runDescribe } from './handlers/describe.ts';
import { runGenerate } from './handlers/generate.ts';
import type { ImageSourceDeps } from './image-source.ts';
import { end, purgeQuietly, requeue, succeed } from './job-finish.ts';
import { JobLocks } from './job-locks.ts';
import { lockJob, terminateJob } from './job-state.ts';
import { createProgressSink } from './progress-sink.ts';
import {
  type Consumer,
  DEFAULT_QUEUE_POLICY,
  type Delivery,
  type HandlerContext,
  type HarmonJobPayload,
  type JobQueue,
} from './queue/port.ts';
import type { JobRunner } from './runner.ts';

export interface WorkerDeps {
  prisma: Prisma;
  /** For the advisory-lock connection. */
  databaseUrl: string;
  queue: JobQueue<HarmonJobPayload>;
  blobStore: BlobStore;
  runner: JobRunner;
  log?: Logger;
  /** Per-tenant concurrency gate, called inside the claim transaction (src/tenancy). */
  canStart?: (tx: Tx, tenantId: string) => Promise<boolean>;
  /** Same as the queue policy's maxAttempts: the attempt on which a transient error becomes FAILED. */
  maxAttempts?: number;
  images?: Omit<ImageSourceDeps, 'prisma' | 'blobStore'>;
  /** How often the row is polled for cancelRequested between progress events (default 1000 ms). */
  cancelPollMs?: number;
  /** Delay before a job blocked by the concurrency limit is offered again (default 3 s). */
  slotRetrySeconds?: number;
}

/** Client-input errors: retrying cannot help, so the job fails at once. */
const PERMANENT = new Set([
  'BAD_USER_INPUT',
  'IMAGE_INVALID',
  'NOT_FOUND',
  'FORBIDDEN',
  'CONFLICT',
  'MODEL_INVALID',
  'WEIGHTS_INVALID',
  'QUOTA_EXCEEDED',
]);

type AbortWhy = { kind: 'cancel' } | { kind: 'shutdown' } | { kind: 'write-failed'; error: unknown };

export class JobBusyError extends Error {
  constructor(jobId: string) {
    super(`job ${jobId} is being run by another worker`);
    this.name = 'JobBusyError';
  }
}

export interface RunningWorker {
  consumer: Consumer;
  /** 'finish' lets the running job complete (up to timeoutMs); 'release' hands it back now. */
  stop(options?: { mode?: 'finish' | 'release'; timeoutMs?: number }): Promise<void>;
}

export function startWorker(deps: WorkerDeps, options: { concurrency?: number } = {}): RunningWorker {
  const log = deps.log ?? rootLogger;
  const locks = new JobLocks(deps.databaseUrl, log);
  const consumer = deps.queue.consume((delivery, ctx) => processDelivery(deps, locks, delivery, ctx), {
    concurrency: options.concurrency ?? 1,
    isAlreadyDone: async (d) => {
      const job = await deps.prisma.job.findFirst({
        where: { id: d.payload.jobId, tenantId: d.payload.tenantId },
        select: { status: true },
      });
      return !job || isTerminalStatus(job.status);
    },
    onError: (e, d) => {
      if (e instanceof JobBusyError) log.info({ jobId: d?.payload.jobId }, e.message);
      else log.warn({ err: e, jobId: d?.payload.jobId, attempt: d?.attempt }, 'job attempt failed');
    },
  });
  return {
    consumer,
    async stop(opts = {}) {
      await consumer.stop({ mode: opts.mode ?? 'finish', timeoutMs: opts.timeoutMs ?? 25_000 });
      await locks.close();
    },
  };
}

/** Handles one delivery; exported for tests that drive it without a consumer loop. */
export async function processDelivery(
  deps: WorkerDeps,
  locks: JobLocks,
  delivery: Delivery<HarmonJobPayload>,
  qctx: HandlerContext,
): Promise<void> {
  const log = (deps.log ?? rootLogger).child({ jobId: delivery.payload.jobId, attempt: delivery.attempt });
  const { jobId, tenantId } = delivery.payload;
  const existing = await deps.prisma.job.findFirst({ where: { id: jobId, tenantId } });
  if (!existing || isTerminalStatus(existing.status)) return;
  if (!(await locks.tryLock(jobId))) throw new JobBusyError(jobId);
  try {
    const claimed = await claim(deps, existing, delivery);
    if (claimed === 'requeued' || claimed === null) return;
    await runClaimed(deps, claimed, delivery, qctx, log);
  } finally {
    await locks.unlock(jobId);
  }
}

async function claim(
  deps: WorkerDeps,
  seen: Job,
  delivery: Delivery<HarmonJobPayload>,
): Promise<Job | 'requeued' | null> {
  const outcome = await deps.prisma.$transaction(async (tx) => {
    const job = await lockJob(tx, seen.tenantId, seen.id);
    if (isTerminalStatus(job.status)) return null;
    if (job.cancelRequested) {
      await terminateJob(tx, {
        jobId: job.id,
        tenantId: job.tenantId,
        status: 'CANCELED',
        error: { code: 'CANCELED', message: 'The job was canceled.' },
        locked: job,
      });
      return null;
    }
    // A RUNNING job here is a re-delivery after its worker died: it already holds a slot.
    if (job.status === 'QUEUED' && deps.canStart && !(await deps.canStart(tx, job.tenantId))) {
      await tx.job.update({ where: { id: job.id }, data: { updatedAt: new Date() } }); // fresh for the sweeper
      return 'requeued' as const;
    }
    const running = await tx.job.update({
      where: { id: job.id },
      data: {
        status: 'RUNNING',
        attempts: { increment: 1 },
        startedAt: job.startedAt ?? new Date(),
        progress: 0,
      },
    });
    await appendEvent(tx, {
      jobId: job.id,
      tenantId: job.tenantId,
      type: 'STATUS',
      status: 'RUNNING',
      payload: { stage: `attempt ${delivery.attempt}` },
    });
    return running;
  });
  if (outcome === 'requeued') {
    // Jobs over the tenant's concurrency limit wait in QUEUED: offer the job again a bit later.
    await deps.queue.send(
      { jobId: seen.id, tenantId: seen.tenantId },
      { key: seen.id, delaySeconds: deps.slotRetrySeconds ?? 3 },
    );
  }
  return outcome;
}

async function runClaimed(
  deps: WorkerDeps,
  job: Job,
  delivery: Delivery<HarmonJobPayload>,
  qctx: HandlerContext,
  log: Logger,
): Promise<void> {
  const fin = { prisma: deps.prisma, blobStore: deps.blobStore, log };
  // Objects a dead earlier attempt uploaded but never recorded; we hold the job's lock, so no
  // live attempt can still be writing them.
  await purgeQuietly(fin, job.id);
  const abort = new AbortController();
  const stopRun = (why: AbortWhy) => {
    if (!abort.signal.aborted) abort.abort(why);
  };
  const onQueueAbort = () => stopRun({ kind: 'shutdown' });
  if (qctx.signal.aborted) onQueueAbort();
  qctx.signal.addEventListener('abort', onQueueAbort, { once: true });
  // Between progress events (long prefill, decode, VAE) the row is polled on a slow timer too.
  const poll = setInterval(() => {
    deps.prisma.job
      .findUnique({ where: { id: job.id }, select: { cancelRequested: true } })
      .then((r) => r?.cancelRequested && stopRun({ kind: 'cancel' }))
      .catch(() => {});
  }, deps.cancelPollMs ?? 1000);
  const sink = createProgressSink({
    prisma: deps.prisma,
    blobStore: deps.blobStore,
    job,
    log,
    onCancelRequested: () => stopRun({ kind: 'cancel' }),
    onWriteError: (error) => stopRun({ kind: 'write-failed', error }),
  });
  const hctx: JobHandlerContext = {
    prisma: deps.prisma,
    blobStore: deps.blobStore,
    runner: deps.runner,
    job,
    log,
    signal: abort.signal,
    onEvent: (e) => sink.onEvent(e),
    images: deps.images ?? { maxBytes: IMAGE_BYTES.default },
  };

  let outcome: JobOutcome | undefined;
  let failure: unknown;
  try {
    outcome = job.kind === 'GENERATE' ? await runGenerate(hctx) : await runDescribe(hctx);
    await sink.drain();
  } catch (e) {
    failure = e;
    await sink.drain().catch(() => {});
  } finally {
    clearInterval(poll);
    qctx.signal.removeEventListener('abort', onQueueAbort);
  }

  if (outcome && failure === undefined) return void (await succeed(fin, job, outcome));
  const why = abort.signal.aborted ? (abort.signal.reason as AbortWhy) : undefined;
  if (why?.kind === 'cancel') {
    await end(fin, job, 'CANCELED', { code: 'CANCELED', message: 'The job was canceled while running.' });
    return;
  }
  if (why?.kind === 'shutdown') {
    await requeue(fin, job, 'worker stopping: job released');
    throw failure ?? new AppError('CANCELED', 'worker stopping');
  }
  const error = why?.kind === 'write-failed' ? why.error : failure;
  const code = isAppError(error) ? error.code : 'INTERNAL';
  const message = error instanceof Error ? error.message : String(error);
  const maxAttempts = deps.maxAttempts ?? DEFAULT_QUEUE_POLICY.maxAttempts;
  if (PERMANENT.has(code) || delivery.attempt >= maxAttempts) {
    // Unexpected errors are masked for the client; the log keeps the detail.
    log.warn({ err: error }, 'job failed');
    await end(fin, job, 'FAILED', {
      code: PERMANENT.has(code) ? code : 'INTERNAL',
      message: PERMANENT.has(code) ? message : 'The job failed after retries.',
    });
    return;
  }
  await requeue(fin, job, `retrying after ${code}`);
  throw error;
}
