/**
 * The job worker (body of `harmon worker` and of the in-process worker of `harmon serve`):
 * pulls `{jobId, tenantId}` messages from the queue port and runs each job exactly once in effect.
 * Every change to the job row is a transition of job-lifecycle.ts; this file decides which.
 *
 *   message -> job ended, or a newer message names it (stale)? ack, nothing runs
 *           -> advisory lock (job-locks.ts). Held by a live worker: the message is deferred to a
 *              delayed copy (not a failed attempt). Held by a worker silent past the lease
 *              (frozen): its lock session is ended and the job taken over.
 *           -> claim: tenant slot free? RUNNING + attempts++ (the fence) + STATUS event
 *           -> handler (engine in its worker thread; events -> progress-sink; heartbeats; abort on
 *              cancel, SIGTERM, or the job lost to another attempt)
 *           -> outputs to S3 (keys recorded as pending first) -> ONE transition: Assets +
 *              UsageRecord + final status + RESULT/STATUS events
 *
 * Failures: client input (bad input, unknown upload, refused URL, undecodable image) -> FAILED at
 * once and the message is acked; anything else -> back to QUEUED and thrown, so the queue retries
 * the same message with backoff, and FAILED once the job has had maxAttempts runs. Shutdown ->
 * back to QUEUED and the message released. A lost queue lease alone changes nothing while the job
 * row still names this attempt; a lost job (fence) stops the attempt without writing anything.
 */
import type { Tx } from '../events/event-log.ts';
import { isTerminalStatus } from '../events/job-events.ts';
import { AppError, isAppError } from '../shared/errors.ts';
import { IMAGE_BYTES } from '../shared/images.ts';
import { type Logger, logger as rootLogger } from '../shared/logger.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { Prisma } from '../storage/db.ts';
import type { HandlerContext as JobHandlerContext, JobOutcome } from './handlers/context.ts';
import { runDescribe } from './handlers/describe.ts';
import { runGenerate } from './handlers/generate.ts';
import type { ImageSourceDeps } from './image-source.ts';
import {
  claimJob,
  deferMessage,
  endRun,
  heartbeat,
  isLiveMessage,
  JobLostError,
  type Run,
  requeueRun,
  succeedRun,
} from './job-lifecycle.ts';
import { JobLocks } from './job-locks.ts';
import { purgeQuietly } from './pending-uploads.ts';
import { createProgressSink } from './progress-sink.ts';
import {
  type Consumer,
  DEFAULT_QUEUE_POLICY,
  type Delivery,
  type HandlerContext,
  type HarmonJobPayload,
  type JobQueue,
  LeaseLostError,
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
  /** Runs a job may have; a transient error on the last one (or a run dying after it) is FAILED. */
  maxAttempts?: number;
  images?: Omit<ImageSourceDeps, 'prisma' | 'blobStore'>;
  /** Delay before a job blocked by the concurrency limit is offered again (default 3 s). */
  slotRetrySeconds?: number;
  /**
   * The queue lease (visibility timeout; default the queue policy's). A RUNNING job whose
   * heartbeat is older belongs to a frozen worker and is taken over by the next delivery.
   */
  leaseSeconds?: number;
  /** Heartbeat period (default a third of the lease, at most 10 s). */
  heartbeatMs?: number;
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

type AbortWhy =
  | { kind: 'cancel' }
  | { kind: 'shutdown' }
  | { kind: 'lost'; error: JobLostError }
  | { kind: 'write-failed'; error: unknown };

export interface RunningWorker {
  consumer: Consumer;
  /** Jobs this process is running now (the reconciler never reclaims them). */
  running: ReadonlySet<string>;
  /** 'finish' lets the running job complete (up to timeoutMs); 'release' hands it back now. */
  stop(options?: { mode?: 'finish' | 'release'; timeoutMs?: number }): Promise<void>;
}

const leaseSecondsOf = (deps: WorkerDeps) =>
  deps.leaseSeconds ?? DEFAULT_QUEUE_POLICY.visibilityTimeoutSeconds;

export function startWorker(deps: WorkerDeps, options: { concurrency?: number } = {}): RunningWorker {
  const log = deps.log ?? rootLogger;
  const locks = new JobLocks(deps.databaseUrl, log);
  const running = new Set<string>();
  const consumer = deps.queue.consume(
    (delivery, ctx) => processDelivery(deps, locks, delivery, ctx, running),
    {
      concurrency: options.concurrency ?? 1,
      isAlreadyDone: async (d) => {
        const job = await deps.prisma.job.findFirst({
          where: { id: d.payload.jobId, tenantId: d.payload.tenantId },
          select: { status: true, queueToken: true },
        });
        return !job || isTerminalStatus(job.status) || !isLiveMessage(job, d.key);
      },
      onError: (e, d) =>
        log.warn({ err: e, jobId: d?.payload.jobId, attempt: d?.attempt }, 'job attempt failed'),
    },
  );
  return {
    consumer,
    running,
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
  running = new Set<string>(),
): Promise<void> {
  const log = (deps.log ?? rootLogger).child({ jobId: delivery.payload.jobId, delivery: delivery.attempt });
  const message = { ...delivery.payload, key: delivery.key };
  const { jobId, tenantId } = message;
  const seen = await deps.prisma.job.findFirst({
    where: { id: jobId, tenantId },
    select: { status: true, queueToken: true },
  });
  if (!seen || isTerminalStatus(seen.status) || !isLiveMessage(seen, message.key)) return;
  if (!(await locks.tryLock(jobId)) && !(await takeOver(deps, locks, jobId, log))) {
    // A live worker holds the job (its queue lease ran out, say after a long pause): keep this
    // message alive as a delayed copy. Not a failed attempt, so it can never dead-letter the job.
    const moved = await deferMessage(deps.prisma, deps.queue, message, Math.ceil(leaseSecondsOf(deps) / 2));
    log.info({ moved }, 'job is running on another worker; message deferred');
    return;
  }
  try {
    const claimed = await claimJob(deps.prisma, message, {
      queue: deps.queue,
      maxAttempts: deps.maxAttempts ?? DEFAULT_QUEUE_POLICY.maxAttempts,
      canStart: deps.canStart,
      slotRetrySeconds: deps.slotRetrySeconds ?? 3,
    });
    if (claimed.kind !== 'run') {
      if (claimed.kind === 'dropped' && claimed.why === 'out-of-attempts')
        log.warn('job failed: every run so far died with its worker');
      return;
    }
    running.add(jobId);
    await runClaimed(deps, claimed.run, qctx, log);
  } finally {
    running.delete(jobId);
    await locks.unlock(jobId);
  }
}

/** The lock holder is alive but has been silent longer than the lease (frozen): end its session. */
async function takeOver(deps: WorkerDeps, locks: JobLocks, jobId: string, log: Logger): Promise<boolean> {
  const row = await deps.prisma.job.findUnique({
    where: { id: jobId },
    select: { status: true, heartbeatAt: true },
  });
  if (row?.status !== 'RUNNING') return false;
  const silentMs = Date.now() - (row.heartbeatAt?.getTime() ?? 0);
  if (silentMs < leaseSecondsOf(deps) * 1000) return false;
  const seized = await locks.seize(jobId);
  log.warn({ silentMs, seized }, 'the worker holding this job is silent past its lease: taking the job over');
  return seized;
}

async function runClaimed(deps: WorkerDeps, run: Run, qctx: HandlerContext, log: Logger): Promise<void> {
  const fin = { prisma: deps.prisma, blobStore: deps.blobStore, log };
  // Objects a dead earlier attempt uploaded but never recorded; we hold the job's lock, so no
  // live attempt can still be writing them.
  await purgeQuietly(fin, run.job.id);
  const abort = new AbortController();
  const stopRun = (why: AbortWhy) => {
    if (!abort.signal.aborted) abort.abort(why);
  };
  const onQueueAbort = () => {
    if (qctx.signal.reason instanceof LeaseLostError) {
      // The job row, not the queue lease, says whose run this is; whoever got the message finds
      // the job busy and defers it, so this run goes on.
      log.warn('queue lease lost (message re-delivered); the job row still names this attempt');
    } else stopRun({ kind: 'shutdown' });
  };
  if (qctx.signal.aborted) onQueueAbort();
  qctx.signal.addEventListener('abort', onQueueAbort, { once: true });
  const onLost = (error: JobLostError) => stopRun({ kind: 'lost', error });
  const heartbeatMs = deps.heartbeatMs ?? Math.min(10_000, (leaseSecondsOf(deps) * 1000) / 3);
  const beat = setInterval(() => {
    heartbeat(deps.prisma, run).then(
      (r) => r.cancelRequested && stopRun({ kind: 'cancel' }),
      (e: unknown) => (e instanceof JobLostError ? onLost(e) : log.warn({ err: e }, 'heartbeat failed')),
    );
  }, heartbeatMs);
  const sink = createProgressSink({
    prisma: deps.prisma,
    blobStore: deps.blobStore,
    run,
    log,
    onCancelRequested: () => stopRun({ kind: 'cancel' }),
    onLost,
    onWriteError: (error) => stopRun({ kind: 'write-failed', error }),
  });
  const hctx: JobHandlerContext = {
    prisma: deps.prisma,
    blobStore: deps.blobStore,
    runner: deps.runner,
    job: run.job,
    log,
    signal: abort.signal,
    onEvent: (e) => sink.onEvent(e),
    images: deps.images ?? { maxBytes: IMAGE_BYTES.default },
  };

  let outcome: JobOutcome | undefined;
  let failure: unknown;
  try {
    outcome = run.job.kind === 'GENERATE' ? await runGenerate(hctx) : await runDescribe(hctx);
    await sink.drain();
  } catch (e) {
    failure = e;
    await sink.drain().catch(() => {});
  } finally {
    clearInterval(beat);
    qctx.signal.removeEventListener('abort', onQueueAbort);
  }
  const why = abort.signal.aborted ? (abort.signal.reason as AbortWhy) : undefined;
  try {
    if (why?.kind === 'lost') throw why.error;
    await settle(deps, run, outcome, failure, why, log);
  } catch (e) {
    if (!(e instanceof JobLostError)) throw e;
    // Taken over by another attempt, or ended elsewhere (canceled, dead-lettered): not ours to
    // write any more, and not a failure of the message.
    log.warn({ status: e.status }, 'this attempt lost the job; it stops without writing');
    if (e.status && isTerminalStatus(e.status)) await purgeQuietly(fin, run.job.id);
  }
}

async function settle(
  deps: WorkerDeps,
  run: Run,
  outcome: JobOutcome | undefined,
  failure: unknown,
  why: AbortWhy | undefined,
  log: Logger,
): Promise<void> {
  const fin = { prisma: deps.prisma, blobStore: deps.blobStore, log };
  if (outcome && failure === undefined) return succeedRun(deps.prisma, run, outcome);
  if (why?.kind === 'cancel') {
    await endRun(deps.prisma, run, 'CANCELED', {
      code: 'CANCELED',
      message: 'The job was canceled while running.',
    });
    // No later attempt will come to clean up what this one uploaded.
    return purgeQuietly(fin, run.job.id);
  }
  if (why?.kind === 'shutdown') {
    await requeueRun(deps.prisma, run, 'worker stopping: job released');
    throw failure ?? new AppError('CANCELED', 'worker stopping');
  }
  const error = why?.kind === 'write-failed' ? why.error : failure;
  const code = isAppError(error) ? error.code : 'INTERNAL';
  const message = error instanceof Error ? error.message : String(error);
  if (PERMANENT.has(code) || run.attempt >= (deps.maxAttempts ?? DEFAULT_QUEUE_POLICY.maxAttempts)) {
    // Unexpected errors are masked for the client; the log keeps the detail.
    log.warn({ err: error }, 'job failed');
    await endRun(deps.prisma, run, 'FAILED', {
      code: PERMANENT.has(code) ? code : 'INTERNAL',
      message: PERMANENT.has(code) ? message : 'The job failed after retries.',
    });
    return purgeQuietly(fin, run.job.id);
  }
  await requeueRun(deps.prisma, run, `retrying after ${code}`);
  throw error;
}
