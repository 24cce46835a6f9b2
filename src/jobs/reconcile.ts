/**
 * The periodic check that every unfinished job has exactly one live queue message, run by every
 * worker service (several at once only repeat each other's no-ops: each repair is a lifecycle
 * transition that re-checks the row under its lock). A live message is one carrying the job's
 * `queueToken`; a repair moves the job to a new token and message, so any older message is stale
 * and dropped unrun when it arrives. Per pass:
 *
 * 1. Dead letters: the queue gave up on a job's live message -> the job is FAILED (before, it sat
 *    QUEUED or RUNNING forever, holding quota and a concurrency slot). Handled letters are removed.
 * 2. Dead workers: a RUNNING job whose advisory lock no session holds lost its worker (SIGKILL,
 *    crash, lost host) -> new message now, so the next worker re-runs it within seconds instead of
 *    after the dead worker's lease. A live worker keeps its lock session however busy it is.
 * 3. Lost messages (every 12th pass by default): on a queue that can count its messages (pg-boss),
 *    an unfinished job without a live message gets one. SQS cannot be looked into, so there a QUEUED job untouched for
 *    `staleSeconds`, or a RUNNING one whose heartbeat is older than twice the lease, gets one
 *    (enqueue sends to SQS after its commit; a crash in between loses the message).
 */
import { type Logger, logger as rootLogger } from '../shared/logger.ts';
import type { Prisma } from '../storage/db.ts';
import { failDeadLettered, reclaimFromDeadWorker, resendLostMessage } from './job-lifecycle.ts';
import { UNLOCKED_RUNNING_JOBS_SQL } from './job-locks.ts';
import type { HarmonJobPayload, JobQueue } from './queue/port.ts';

export interface ReconcileDeps {
  prisma: Prisma;
  queue: Pick<JobQueue<HarmonJobPayload>, 'send' | 'sendInTransaction' | 'drainDeadLetters' | 'countLive'>;
  /** The queue lease (visibility timeout) in seconds. */
  leaseSeconds: number;
  /** Jobs this process runs right now: never reclaimed, whatever the lock view says. */
  running?: ReadonlySet<string>;
  log?: Logger;
}

export interface ReconcileOptions {
  /** SQS only: a QUEUED job untouched this long has lost its message (default 300 s). */
  staleSeconds?: number;
  /** Jobs looked at per step and pass. */
  batch?: number;
  /** The clock of the SQS staleness rules (tests). */
  now?: Date;
  /**
   * Skip step 3 (lost messages). startReconciler runs it on every `lostEvery`-th pass only: on
   * pg-boss it reads the queue table, whose completed rows stay there for hours.
   */
  skipLostMessages?: boolean;
}

export interface ReconcileReport {
  /** Jobs failed because their live message was dead-lettered. */
  failed: string[];
  /** RUNNING jobs of dead workers given a new message. */
  reclaimed: string[];
  /** Unfinished jobs whose message was lost, given a new one. */
  resent: string[];
}

export async function reconcileJobs(d: ReconcileDeps, o: ReconcileOptions = {}): Promise<ReconcileReport> {
  const log = d.log ?? rootLogger;
  const batch = o.batch ?? 200;
  const report: ReconcileReport = { failed: [], reclaimed: [], resent: [] };

  await d.queue.drainDeadLetters(async (letter) => {
    if (await failDeadLettered(d.prisma, { ...letter.payload, key: letter.key }))
      report.failed.push(letter.payload.jobId);
  }, batch);

  const orphans = await d.prisma.$queryRawUnsafe<{ id: string }[]>(UNLOCKED_RUNNING_JOBS_SQL, batch);
  for (const { id } of orphans) {
    if (d.running?.has(id)) continue;
    if (await reclaimFromDeadWorker(d.prisma, d.queue, id)) report.reclaimed.push(id);
  }

  if (o.skipLostMessages) return done(report, log);
  const now = (o.now ?? new Date()).getTime();
  const unfinished = await d.prisma.job.findMany({
    where: { status: { in: ['QUEUED', 'RUNNING'] } },
    orderBy: { updatedAt: 'asc' },
    take: batch,
    select: { id: true, status: true, queueToken: true, updatedAt: true, heartbeatAt: true },
  });
  // Jobs from before tokens carry their id as the message key.
  const keyOf = (j: (typeof unfinished)[number]) => j.queueToken ?? j.id;
  let lost: typeof unfinished;
  if (d.queue.countLive) {
    const live = await d.queue.countLive(unfinished.map(keyOf));
    lost = unfinished.filter((j) => !live.has(keyOf(j)));
  } else {
    const staleMs = (o.staleSeconds ?? 300) * 1000;
    lost = unfinished.filter((j) =>
      j.status === 'QUEUED'
        ? now - j.updatedAt.getTime() > staleMs
        : now - (j.heartbeatAt ?? j.updatedAt).getTime() > 2 * d.leaseSeconds * 1000,
    );
  }
  for (const j of lost) {
    if (await resendLostMessage(d.prisma, d.queue, j.id, j.queueToken)) report.resent.push(j.id);
  }
  return done(report, log);
}

function done(report: ReconcileReport, log: Logger): ReconcileReport {
  if (report.failed.length > 0)
    log.warn({ jobIds: report.failed }, 'jobs failed: their queue message was dead-lettered');
  if (report.reclaimed.length > 0) log.warn({ jobIds: report.reclaimed }, 'jobs of dead workers re-sent');
  if (report.resent.length > 0)
    log.warn({ jobIds: report.resent }, 'jobs without a live queue message re-sent');
  return report;
}

/**
 * Runs a pass every `intervalMs` (default 5 s: how soon a dead worker's job is handed on; the
 * first pass right away) until stopped, the lost-message step on every `lostEvery`-th pass
 * (default 12: once a minute); a slow pass is never overlapped.
 */
export function startReconciler(
  deps: ReconcileDeps,
  options: ReconcileOptions & { intervalMs?: number; lostEvery?: number } = {},
): { stop(): Promise<void> } {
  let pass: Promise<unknown> | undefined;
  let stopped = false;
  let passes = 0;
  const run = () => {
    if (pass || stopped) return;
    const skipLostMessages = passes++ % Math.max(1, options.lostEvery ?? 12) !== 0;
    pass = reconcileJobs(deps, { ...options, skipLostMessages })
      .catch((e: unknown) => (deps.log ?? rootLogger).warn({ err: e }, 'reconcile pass failed'))
      .finally(() => {
        pass = undefined;
      });
  };
  run();
  const timer = setInterval(run, options.intervalMs ?? 5000);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await pass;
    },
  };
}
