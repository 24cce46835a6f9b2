/**
 * Recovers jobs whose queue message was lost: enqueueJob commits the Job row before sending the
 * message, so a crash (or a queue outage) between the two leaves a QUEUED job that nobody will
 * pull. The sweeper re-sends QUEUED jobs that have not been touched for `staleSeconds` and
 * touches them (updatedAt) so each is re-sent at most once per period. A job that still has its
 * original message gets a duplicate; that is harmless — the worker claims a job once (status +
 * advisory lock) and acks messages of finished jobs.
 *
 * Only the SQS backend needs it. A queue with `sendInTransaction` (pg-boss) gets its message in
 * the Job's own insert transaction, so no committed job lacks one; there `startSweeper` runs
 * nothing, since re-sending jobs that merely wait (a long backlog, the tenant's concurrency
 * limit) would only add duplicate messages. `sweepQueuedJobs` still works when called directly.
 */
import { type Logger, logger as rootLogger } from '../shared/logger.ts';
import type { Prisma } from '../storage/db.ts';
import type { HarmonJobPayload, JobQueue } from './queue/port.ts';

export interface SweepOptions {
  /** Age without any update after which a QUEUED job counts as lost (default 300 s). */
  staleSeconds?: number;
  /** Jobs re-sent per sweep. */
  batch?: number;
  now?: Date;
}

export async function sweepQueuedJobs(
  deps: { prisma: Prisma; queue: Pick<JobQueue<HarmonJobPayload>, 'send'>; log?: Logger },
  options: SweepOptions = {},
): Promise<string[]> {
  const log = deps.log ?? rootLogger;
  const now = options.now ?? new Date();
  const cutoff = new Date(now.getTime() - (options.staleSeconds ?? 300) * 1000);
  const stale = await deps.prisma.job.findMany({
    where: { status: 'QUEUED', updatedAt: { lt: cutoff } },
    orderBy: { queuedAt: 'asc' },
    take: options.batch ?? 100,
    select: { id: true, tenantId: true, updatedAt: true },
  });
  const resent: string[] = [];
  for (const job of stale) {
    // Claim by touching the row (compare-and-set on updatedAt) so two sweepers do not both send.
    const claimed = await deps.prisma.job.updateMany({
      where: { id: job.id, status: 'QUEUED', updatedAt: job.updatedAt },
      data: { updatedAt: now },
    });
    if (claimed.count === 0) continue;
    try {
      await deps.queue.send({ jobId: job.id, tenantId: job.tenantId }, { key: job.id });
      resent.push(job.id);
    } catch (e) {
      log.warn({ err: e, jobId: job.id }, 'sweeper could not re-send a queued job');
    }
  }
  if (resent.length > 0) log.info({ count: resent.length }, 'sweeper re-sent queued jobs');
  return resent;
}

/** Whether jobs sent through this queue can lose their message (see the file comment). */
export function sweeperNeeded(
  queue: Pick<JobQueue<HarmonJobPayload>, 'send' | 'sendInTransaction'>,
): boolean {
  return queue.sendInTransaction === undefined;
}

/**
 * Runs the sweeper every `intervalMs` until stopped; `active` is false (and nothing runs) for a
 * queue whose messages are written in the Job's transaction.
 */
export function startSweeper(
  deps: {
    prisma: Prisma;
    queue: Pick<JobQueue<HarmonJobPayload>, 'send' | 'sendInTransaction'>;
    log?: Logger;
  },
  options: SweepOptions & { intervalMs?: number } = {},
): { stop(): void; active: boolean } {
  if (!sweeperNeeded(deps.queue)) return { stop: () => {}, active: false };
  const timer = setInterval(() => {
    sweepQueuedJobs(deps, options).catch((e: unknown) =>
      (deps.log ?? rootLogger).warn({ err: e }, 'sweep failed'),
    );
  }, options.intervalMs ?? 60_000);
  timer.unref();
  return { stop: () => clearInterval(timer), active: true };
}
