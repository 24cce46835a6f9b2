/**
 * One job's attempt on this worker, the same whether the job runs alone (worker.ts) or in a
 * cross-job batch (batch-run.ts): take its advisory lock and claim it (`acquireJob`), then
 * `beginAttempt` arms what a running job has (heartbeats, its progress sink, its own abort on
 * cancel, SIGTERM or the job lost to another attempt) and `finish` writes its ONE ending.
 */
import type { Tx } from '../events/event-log.ts';
import { isTerminalStatus } from '../events/job-events.ts';
import type { EventSink } from '../harmon/events.ts';
import { AppError, isAppError } from '../shared/errors.ts';
import { IMAGE_BYTES } from '../shared/images.ts';
import type { Logger } from '../shared/logger.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import { isDatabaseUnavailable, type Prisma } from '../storage/db.ts';
import type { HandlerContext as JobHandlerContext, JobOutcome } from './handlers/context.ts';
import type { ImageSourceDeps } from './image-source.ts';
import {
  claimJob,
  deferMessage,
  endRun,
  heartbeat,
  JobLostError,
  type Run,
  requeueRun,
  succeedRun,
} from './job-lifecycle.ts';
import type { JobLocks } from './job-locks.ts';
import { purgeQuietly } from './pending-uploads.ts';
import { createProgressSink } from './progress-sink.ts';
import {
  DEFAULT_QUEUE_POLICY,
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
  /** Generate jobs run together in one MAR loop (WORKER_MAX_BATCH; default 1: no batching). */
  maxBatch?: number;
  /** How long the oldest waiting job gathers companions (default GATHER_MS, batch-gatherer.ts). */
  gatherMs?: number;
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

export const leaseSecondsOf = (deps: WorkerDeps) =>
  deps.leaseSeconds ?? DEFAULT_QUEUE_POLICY.visibilityTimeoutSeconds;

export type Message = HarmonJobPayload & { key: string };

/**
 * Lock + claim. A Run: this process holds the job's lock and has it in `held` until
 * `releaseJob`. Undefined: nothing to run here (deferred, ended, stale, waiting for a tenant
 * slot), with nothing held.
 */
export async function acquireJob(
  deps: WorkerDeps,
  locks: JobLocks,
  message: Message,
  log: Logger,
  held: Set<string>,
): Promise<Run | undefined> {
  const { jobId } = message;
  // Session advisory locks nest within one connection: a second delivery of a job this process
  // already runs would "get" the lock again, so this process's own jobs are checked first.
  const mine = held.has(jobId);
  if (!mine) held.add(jobId);
  if (mine || (!(await locks.tryLock(jobId)) && !(await takeOver(deps, locks, jobId, log)))) {
    if (!mine) held.delete(jobId);
    // A live worker holds the job (its queue lease ran out, say after a long pause): keep this
    // message alive as a delayed copy. Not a failed attempt, so it can never dead-letter the job.
    const moved = await deferMessage(deps.prisma, deps.queue, message, Math.ceil(leaseSecondsOf(deps) / 2));
    log.info({ moved }, 'job is running on another worker; message deferred');
    return undefined;
  }
  let claimed: Awaited<ReturnType<typeof claimJob>> | undefined;
  try {
    claimed = await claimJob(deps.prisma, message, {
      queue: deps.queue,
      maxAttempts: deps.maxAttempts ?? DEFAULT_QUEUE_POLICY.maxAttempts,
      canStart: deps.canStart,
      slotRetrySeconds: deps.slotRetrySeconds ?? 3,
    });
  } finally {
    if (claimed?.kind !== 'run') await releaseJob(locks, held, jobId);
  }
  if (claimed.kind === 'dropped' && claimed.why === 'out-of-attempts')
    log.warn('job failed: every run so far died with its worker');
  return claimed.kind === 'run' ? claimed.run : undefined;
}

export async function releaseJob(locks: JobLocks, held: Set<string>, jobId: string): Promise<void> {
  held.delete(jobId);
  await locks.unlock(jobId);
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

export interface Attempt {
  run: Run;
  log: Logger;
  /** Aborted on this job's cancel, its loss to another attempt, a failed event write or SIGTERM. */
  signal: AbortSignal;
  onEvent: EventSink;
  handlerContext: JobHandlerContext;
  /** After the pipeline: drains the event writes and writes the job's one ending (or nothing if lost). */
  finish(outcome: JobOutcome | undefined, failure: unknown): Promise<void>;
}

export async function beginAttempt(
  deps: WorkerDeps,
  run: Run,
  qctx: HandlerContext,
  log: Logger,
): Promise<Attempt> {
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
  const onEvent: EventSink = (e) => sink.onEvent(e);
  return {
    run,
    log,
    signal: abort.signal,
    onEvent,
    handlerContext: {
      prisma: deps.prisma,
      blobStore: deps.blobStore,
      runner: deps.runner,
      job: run.job,
      log,
      signal: abort.signal,
      onEvent,
      images: deps.images ?? { maxBytes: IMAGE_BYTES.default },
    },
    async finish(outcome, failure) {
      try {
        await sink.drain();
      } catch (e) {
        failure ??= e;
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
    },
  };
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
  if (outcome && failure === undefined) return retried(() => succeedRun(deps.prisma, run, outcome), log);
  if (why?.kind === 'cancel') {
    await retried(
      () =>
        endRun(deps.prisma, run, 'CANCELED', {
          code: 'CANCELED',
          message: 'The job was canceled while running.',
        }),
      log,
    );
    // No later attempt will come to clean up what this one uploaded.
    return purgeQuietly(fin, run.job.id);
  }
  if (why?.kind === 'shutdown') {
    await retried(() => requeueRun(deps.prisma, run, 'worker stopping: job released'), log);
    throw failure ?? new AppError('CANCELED', 'worker stopping');
  }
  const error = why?.kind === 'write-failed' ? why.error : failure;
  const code = isAppError(error) ? error.code : 'INTERNAL';
  const message = error instanceof Error ? error.message : String(error);
  if (PERMANENT.has(code) || run.attempt >= (deps.maxAttempts ?? DEFAULT_QUEUE_POLICY.maxAttempts)) {
    // Unexpected errors are masked for the client; the log keeps the detail.
    log.warn({ err: error }, 'job failed');
    await retried(
      () =>
        endRun(deps.prisma, run, 'FAILED', {
          code: PERMANENT.has(code) ? code : 'INTERNAL',
          message: PERMANENT.has(code) ? message : 'The job failed after retries.',
        }),
      log,
    );
    return purgeQuietly(fin, run.job.id);
  }
  await retried(() => requeueRun(deps.prisma, run, `retrying after ${code}`), log);
  throw error;
}

/** Tries of an ending's write, and the pause before the second (doubling after). */
const ENDING_TRIES = 3;
const ENDING_RETRY_MS = 250;

/**
 * An attempt's ending, written again when the database connection failed under it: a worker
 * resumed after a freeze finds its pooled sessions ended (JobLocks.seize), and one dropped
 * connection must not leave the job to the lease's expiry. Fencing makes the repeat safe: if
 * the first write did commit, the second finds the row no longer RUNNING under this attempt and
 * throws JobLostError, which `finish` reports as a lost job without writing anything.
 */
async function retried(write: () => Promise<void>, log: Logger): Promise<void> {
  for (let tried = 1; ; tried++) {
    try {
      return await write();
    } catch (e) {
      if (tried >= ENDING_TRIES || !isDatabaseUnavailable(e)) throw e;
      log.warn({ err: e, tried }, "writing the attempt's ending failed on the connection; trying again");
      await new Promise((r) => setTimeout(r, ENDING_RETRY_MS * 2 ** (tried - 1)));
    }
  }
}
