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
 * Cross-job batching (WORKER_MAX_BATCH > 1): every live delivery first waits in
 * batch-gatherer.ts (composition policy there), before its lock; generate jobs with one batch key
 * then each go through the steps above on their own and share one `generateBatch` call
 * (batch-run.ts); describe jobs and keyless generate jobs are batches of one. A stopping worker
 * moves the jobs still gathering (never claimed here) to new messages at once.
 *
 * Failures: client input (bad input, unknown upload, refused URL, undecodable image) -> FAILED at
 * once and the message is acked; anything else -> back to QUEUED and thrown, so the queue retries
 * the same message with backoff, and FAILED once the job has had maxAttempts runs. Shutdown ->
 * back to QUEUED and the message released. A lost queue lease alone changes nothing while the job
 * row still names this attempt; a lost job (fence) stops the attempt without writing anything.
 */
import { isTerminalStatus } from '../events/job-events.ts';
import type { Job } from '../generated/prisma/client.ts';
import { generateInputSchema } from '../shared/job-inputs.ts';
import { type Logger, logger as rootLogger } from '../shared/logger.ts';
import { BatchGatherer, GathererClosedError } from './batch-gatherer.ts';
import { type Member, runBatch, settled, type WorkerCore } from './batch-run.ts';
import type { JobOutcome } from './handlers/context.ts';
import { runDescribe } from './handlers/describe.ts';
import { runGenerate } from './handlers/generate.ts';
import { acquireJob, beginAttempt, releaseJob, type WorkerDeps } from './job-attempt.ts';
import { deferMessage, isLiveMessage, type Run } from './job-lifecycle.ts';
import { JobLocks } from './job-locks.ts';
import type { Consumer, Delivery, HandlerContext, HarmonJobPayload } from './queue/port.ts';
import type { JobRunner } from './runner.ts';

export type { WorkerDeps } from './job-attempt.ts';

export interface RunningWorker {
  consumer: Consumer;
  /** Jobs this process is running now (the reconciler never reclaims them). */
  running: ReadonlySet<string>;
  /** 'finish' lets the running job complete (up to timeoutMs); 'release' hands it back now. */
  stop(options?: { mode?: 'finish' | 'release'; timeoutMs?: number }): Promise<void>;
}

/**
 * `concurrency`: jobs (without batching) or batches (with) running at once. With batching the
 * consumer holds twice maxBatch messages per batch slot: one batch running, one gathering.
 */
export function startWorker(deps: WorkerDeps, options: { concurrency?: number } = {}): RunningWorker {
  const log = deps.log ?? rootLogger;
  const locks = new JobLocks(deps.databaseUrl, log);
  const running = new Set<string>();
  const parallel = Math.max(1, options.concurrency ?? 1);
  const maxBatch = Math.max(1, deps.maxBatch ?? 1);
  const core: WorkerCore = { deps, locks, held: running, log };
  const gatherer =
    maxBatch > 1
      ? new BatchGatherer<Member>({
          maxBatch,
          gatherMs: deps.gatherMs,
          parallel,
          run: async (members, key, engineFree) => {
            // Taken for a run: back to the full lease (a lost one aborts its member's signal).
            await Promise.all(members.map((m) => m.qctx.setLease()));
            return key === null
              ? runAlone(core, members[0]).finally(engineFree)
              : runBatch(core, members, engineFree);
          },
        })
      : undefined;
  const isAlreadyDone = async (d: Delivery<HarmonJobPayload>) => !(await liveJob(deps, d));
  const consumer = deps.queue.consume(
    (delivery, ctx) =>
      gatherer
        ? gatherDelivery(core, gatherer, delivery, ctx)
        : processDelivery(deps, locks, delivery, ctx, running),
    {
      concurrency: gatherer ? parallel * maxBatch * 2 : parallel,
      // With batching the handler makes this check itself, announced to the gatherer first: a
      // batch waits for messages already received rather than leave them for the next one.
      isAlreadyDone: gatherer ? undefined : isAlreadyDone,
      onError: (e, d) =>
        log.warn({ err: e, jobId: d?.payload.jobId, attempt: d?.attempt }, 'job attempt failed'),
    },
  );
  return {
    consumer,
    running,
    async stop(opts = {}) {
      // Jobs still waiting for a batch go back to the queue at once (gatherDelivery).
      gatherer?.close();
      await consumer.stop({ mode: opts.mode ?? 'finish', timeoutMs: opts.timeoutMs ?? 25_000 });
      await locks.close();
    },
  };
}

/**
 * The lease of a delivery waiting for a batch (seconds, at most the visibility timeout): how
 * soon another worker gets it when this one dies. Renewed every third of it while it waits.
 */
export const WAITING_LEASE_SECONDS = 15;

type Seen = Pick<Job, 'status' | 'queueToken' | 'kind' | 'modelId' | 'input' | 'createdAt'>;

/** The job row, or null when the delivery has nothing to run (job gone, ended, or a stale message). */
async function liveJob(deps: WorkerDeps, delivery: Delivery<HarmonJobPayload>): Promise<Seen | null> {
  const { jobId, tenantId } = delivery.payload;
  const seen = await deps.prisma.job.findFirst({
    where: { id: jobId, tenantId },
    select: { status: true, queueToken: true, kind: true, modelId: true, input: true, createdAt: true },
  });
  return !seen || isTerminalStatus(seen.status) || !isLiveMessage(seen, delivery.key) ? null : seen;
}

/** The key under which a job may share a MAR loop, or null when it runs alone. */
export function batchKeyOf(runner: JobRunner, job: Pick<Job, 'kind' | 'modelId' | 'input'>): string | null {
  if (job.kind !== 'GENERATE' || !runner.batchKey || !runner.generateBatch) return null;
  const input = generateInputSchema.safeParse(job.input);
  if (!input.success) return null; // fails as bad input when it runs (alone)
  try {
    const key = runner.batchKey(job.modelId, input.data);
    return key === null ? null : `${job.modelId}\n${key}`;
  } catch {
    return null; // e.g. a model not served here: fails with its own error, alone
  }
}

async function gatherDelivery(
  core: WorkerCore,
  gatherer: BatchGatherer<Member>,
  delivery: Delivery<HarmonJobPayload>,
  qctx: HandlerContext,
): Promise<void> {
  const arrived = gatherer.arriving();
  let seen: Seen | null = null;
  try {
    seen = await liveJob(core.deps, delivery);
  } finally {
    // Nothing to run (or the check failed): no batch waits for this delivery any more.
    if (!seen) arrived();
  }
  if (!seen) return;
  try {
    // Held here, not yet started: on a short lease, so that if this process dies the job is
    // delivered again within WAITING_LEASE_SECONDS (the batch restores the full lease).
    await qctx.setLease(WAITING_LEASE_SECONDS);
    await gatherer.submit({
      key: batchKeyOf(core.deps.runner, seen),
      tenantId: delivery.payload.tenantId,
      enqueuedAt: seen.createdAt.getTime(),
      item: { delivery, qctx, modelId: seen.modelId },
      signal: qctx.signal,
      arrived,
    });
  } catch (e) {
    if (!(e instanceof GathererClosedError)) throw e;
    // The worker is stopping before this job was picked: it moves to a new message at once, so
    // another worker takes it now (not a failed delivery; the job was never claimed here).
    await deferMessage(core.deps.prisma, core.deps.queue, { ...delivery.payload, key: delivery.key }, 0);
  }
}

const runAlone = async (core: WorkerCore, m: Member): Promise<PromiseSettledResult<void>[]> => [
  await settled(processDelivery(core.deps, core.locks, m.delivery, m.qctx, core.held)),
];

/** Handles one delivery alone; exported for tests that drive it without a consumer loop. */
export async function processDelivery(
  deps: WorkerDeps,
  locks: JobLocks,
  delivery: Delivery<HarmonJobPayload>,
  qctx: HandlerContext,
  running = new Set<string>(),
): Promise<void> {
  const log = (deps.log ?? rootLogger).child({ jobId: delivery.payload.jobId, delivery: delivery.attempt });
  if (!(await liveJob(deps, delivery))) return;
  const run = await acquireJob(deps, locks, { ...delivery.payload, key: delivery.key }, log, running);
  if (!run) return;
  try {
    await runClaimed(deps, run, qctx, log);
  } finally {
    await releaseJob(locks, running, run.job.id);
  }
}

async function runClaimed(deps: WorkerDeps, run: Run, qctx: HandlerContext, log: Logger): Promise<void> {
  const attempt = await beginAttempt(deps, run, qctx, log);
  let outcome: JobOutcome | undefined;
  let failure: unknown;
  try {
    outcome =
      run.job.kind === 'GENERATE'
        ? await runGenerate(attempt.handlerContext)
        : await runDescribe(attempt.handlerContext);
  } catch (e) {
    failure = e;
  }
  await attempt.finish(outcome, failure);
}
