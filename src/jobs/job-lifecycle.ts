/**
 * The Job row's lifecycle, in one place. Every change of a job after its creation (enqueue.ts) is
 * a transition here: claim, progress / preview / text, heartbeat, succeed, fail, requeue, cancel,
 * and the reconciler's re-send and dead-letter failure. Each is ONE transaction that locks the
 * row ONCE (`SELECT * ... FOR UPDATE`, which also reads it), checks what the transition needs,
 * writes the row and appends its events under that same lock (appendEvent takes the LockedJob).
 *
 * Fencing: a claim increments `attempts`, and a worker's later writes name the value its claim
 * set (`Run.attempt`). Once another claim or an ending changed the row they throw JobLostError
 * and write nothing, so a worker that was frozen and taken over can never change the job again.
 *
 * Queue message: `queueToken` names the job's one live message. `moveToNewMessage` writes a new
 * token and sends a message carrying it, in the same transaction (pg-boss) or right after the
 * commit (SQS); a delivery carrying an older token is stale and dropped unrun.
 */
import { randomUUID } from 'node:crypto';
import { appendEvent, type EventInput, type LockedJob, type Tx } from '../events/event-log.ts';
import { isTerminalStatus, type JobEventPayload, type JobEventRecord } from '../events/job-events.ts';
import type { Job, JobStatus, Prisma as P } from '../generated/prisma/client.ts';
import { Prisma as Sql } from '../generated/prisma/client.ts';
import { AppError } from '../shared/errors.ts';
import { logger } from '../shared/logger.ts';
import type { Prisma } from '../storage/db.ts';
import type { AssetDraft, JobOutcome } from './handlers/context.ts';
import { jobLockKey } from './job-locks.ts';
import { settlePending } from './pending-uploads.ts';
import type { HarmonJobPayload, JobQueue } from './queue/port.ts';
import { prismaSqlTransaction } from './queue/prisma-transaction.ts';

type Row = Job & LockedJob;
type Queue = Pick<JobQueue<HarmonJobPayload>, 'send' | 'sendInTransaction'>;
type Later = (send: () => Promise<unknown>) => void;
type Ending = Extract<JobStatus, 'SUCCEEDED' | 'FAILED' | 'CANCELED'>;
type JobError = { code: string; message: string };

/** A claimed attempt: the job as the claim left it and the `attempts` value that fences it. */
export interface Run {
  job: Job;
  attempt: number;
}

/** A worker's write found the job ended or claimed by another attempt; nothing was written. */
export class JobLostError extends Error {
  constructor(
    readonly jobId: string,
    readonly status: JobStatus | undefined,
  ) {
    super(`job ${jobId} is no longer this attempt's (${status ?? 'gone'})`);
    this.name = 'JobLostError';
  }
}

export const DEAD_LETTER_ERROR: JobError = { code: 'INTERNAL', message: 'The job failed after retries.' };

/** One transaction; sends queued with `later` go out after the commit (a failure only logged). */
async function transition<T>(prisma: Prisma, fn: (tx: Tx, later: Later) => Promise<T>): Promise<T> {
  const sends: (() => Promise<unknown>)[] = [];
  const out = await prisma.$transaction((tx) => fn(tx, (s) => sends.push(s)));
  for (const send of sends) {
    // The job already names the new token: the reconciler re-sends when this message never comes.
    await send().catch((e: unknown) => logger.warn({ err: e }, 'queue send after commit failed'));
  }
  return out;
}

/** THE row lock: locks and reads the job (of that tenant, when given); null when there is none. */
async function lockRow(tx: Tx, jobId: string, tenantId?: string): Promise<Row | null> {
  const tenant = tenantId === undefined ? Sql.empty : Sql.sql`AND "tenantId" = ${tenantId}::uuid`;
  const rows = await tx.$queryRaw<Job[]>`
    SELECT * FROM "Job" WHERE id = ${jobId}::uuid ${tenant} FOR UPDATE`;
  return (rows[0] as Row | undefined) ?? null;
}

/** The lock of a worker write: the row must still be RUNNING under this attempt's claim. */
async function lockRun(tx: Tx, run: Run): Promise<Row> {
  const row = await lockRow(tx, run.job.id, run.job.tenantId);
  if (row?.status !== 'RUNNING' || row.attempts !== run.attempt)
    throw new JobLostError(run.job.id, row?.status);
  return row;
}

async function moveToNewMessage(tx: Tx, row: Row, queue: Queue, later: Later, delaySeconds?: number) {
  const key = randomUUID();
  await tx.job.update({ where: { id: row.id }, data: { queueToken: key } });
  const payload = { jobId: row.id, tenantId: row.tenantId };
  if (queue.sendInTransaction)
    await queue.sendInTransaction(prismaSqlTransaction(tx), payload, { key, delaySeconds });
  else later(() => queue.send(payload, { key, delaySeconds }));
}

/** Whether a delivery keyed `key` is the job's live message (jobs from before tokens accept any). */
export const isLiveMessage = (job: Pick<Job, 'queueToken'>, key: string) =>
  job.queueToken === null || job.queueToken === key;

/**
 * Ends the job: final status, the RESULT / ERROR events, the terminal STATUS event and, when the
 * job has a webhook, its WebhookDelivery row, so no ending can forget one of them.
 */
async function terminate(
  tx: Tx,
  row: Row,
  status: Ending,
  end: { error?: JobError; data?: P.JobUpdateInput; result?: Omit<JobEventPayload, 'status'> } = {},
): Promise<{ job: Job; events: JobEventRecord[] }> {
  const job = await tx.job.update({
    where: { id: row.id },
    data: {
      ...end.data,
      status,
      finishedAt: new Date(),
      ...(end.error ? { errorCode: end.error.code, errorMessage: end.error.message } : {}),
      ...(status === 'SUCCEEDED' ? { progress: 1 } : {}),
    },
  });
  const events: JobEventRecord[] = [];
  if (end.result) events.push(await appendEvent(tx, row, { type: 'RESULT', status, payload: end.result }));
  if (end.error && status === 'FAILED')
    events.push(await appendEvent(tx, row, { type: 'ERROR', status, payload: { error: end.error } }));
  const final = await appendEvent(tx, row, {
    type: 'STATUS',
    status,
    payload: end.error ? { error: end.error } : {},
  });
  events.push(final);
  if (job.webhookUrl) {
    // Delivered later from the log by webhooks.ts; the unique (jobId, seq, url) makes this idempotent.
    await tx.webhookDelivery.createMany({
      data: [{ tenantId: row.tenantId, jobId: row.id, eventSeq: final.seq, url: job.webhookUrl }],
      skipDuplicates: true,
    });
  }
  return { job, events };
}

export type ClaimOutcome =
  | { kind: 'run'; run: Run }
  /** The message is done with: the job is gone, ended (now or before), or named by a newer message. */
  | { kind: 'dropped'; why: 'missing' | 'ended' | 'stale' | 'canceled' | 'out-of-attempts' }
  /** The tenant is at its concurrency limit: the job waits on a new, delayed message. */
  | { kind: 'waiting' };

/**
 * QUEUED (or RUNNING with a dead or stalled predecessor, whose lock the caller now holds) ->
 * RUNNING, attempts + 1, heartbeat now, STATUS RUNNING. The caller must hold the job's advisory lock.
 */
export function claimJob(
  prisma: Prisma,
  message: { jobId: string; tenantId: string; key: string },
  o: {
    queue: Queue;
    maxAttempts: number;
    canStart?: (tx: Tx, tenantId: string) => Promise<boolean>;
    slotRetrySeconds: number;
  },
): Promise<ClaimOutcome> {
  return transition(prisma, async (tx, later): Promise<ClaimOutcome> => {
    const row = await lockRow(tx, message.jobId, message.tenantId);
    if (!row) return { kind: 'dropped', why: 'missing' };
    if (isTerminalStatus(row.status)) return { kind: 'dropped', why: 'ended' };
    if (!isLiveMessage(row, message.key)) return { kind: 'dropped', why: 'stale' };
    if (row.cancelRequested) {
      await terminate(tx, row, 'CANCELED', { error: { code: 'CANCELED', message: 'The job was canceled.' } });
      return { kind: 'dropped', why: 'canceled' };
    }
    if (row.status === 'RUNNING' && row.attempts >= o.maxAttempts) {
      // Every run so far died with its worker: do not feed it another one.
      await terminate(tx, row, 'FAILED', { error: DEAD_LETTER_ERROR });
      return { kind: 'dropped', why: 'out-of-attempts' };
    }
    // A RUNNING job here lost its worker: it already holds a slot.
    if (row.status === 'QUEUED' && o.canStart && !(await o.canStart(tx, row.tenantId))) {
      await moveToNewMessage(tx, row, o.queue, later, o.slotRetrySeconds);
      return { kind: 'waiting' };
    }
    const now = new Date();
    const job = await tx.job.update({
      where: { id: row.id },
      data: {
        status: 'RUNNING',
        attempts: { increment: 1 },
        startedAt: row.startedAt ?? now,
        heartbeatAt: now,
        progress: 0,
      },
    });
    await appendEvent(tx, row, {
      type: 'STATUS',
      status: 'RUNNING',
      payload: { stage: `attempt ${job.attempts}` },
    });
    return { kind: 'run', run: { job, attempt: job.attempts } };
  });
}

/**
 * Moves the job to a new message `delaySeconds` from now unless it ended or a newer message names
 * it: the message `key` is handed back without counting a failed delivery. False when nothing moved.
 */
export function deferMessage(
  prisma: Prisma,
  queue: Queue,
  message: { jobId: string; tenantId: string; key: string },
  delaySeconds: number,
): Promise<boolean> {
  return transition(prisma, async (tx, later) => {
    const row = await lockRow(tx, message.jobId, message.tenantId);
    if (!row || isTerminalStatus(row.status) || !isLiveMessage(row, message.key)) return false;
    await moveToNewMessage(tx, row, queue, later, delaySeconds);
    return true;
  });
}

/** Per MAR step: PROGRESS event, progress, heartbeat. The row read tells the worker about a cancel. */
export function recordProgress(prisma: Prisma, run: Run, step: number, totalSteps: number) {
  return prisma.$transaction(async (tx) => {
    const row = await lockRun(tx, run);
    await appendEvent(tx, row, {
      type: 'PROGRESS',
      status: 'RUNNING',
      payload: { step, totalSteps, stage: 'mar' },
    });
    await tx.job.update({
      where: { id: row.id },
      data: { progress: step / totalSteps, heartbeatAt: new Date() },
    });
    return { cancelRequested: row.cancelRequested };
  });
}

/** A preview already uploaded: its Asset row (settling its pending key) and the PREVIEW event. */
export function recordPreview(prisma: Prisma, run: Run, draft: AssetDraft, step: number, totalSteps: number) {
  return prisma.$transaction(async (tx) => {
    const row = await lockRun(tx, run);
    await tx.asset.create({ data: { ...draft, tenantId: row.tenantId, jobId: row.id } });
    await settlePending(tx, row.id, [draft.key]);
    await appendEvent(tx, row, {
      type: 'PREVIEW',
      status: 'RUNNING',
      payload: { step, totalSteps, previewAssetId: draft.id },
    });
    return { cancelRequested: row.cancelRequested };
  });
}

export function recordText(prisma: Prisma, run: Run, textDelta: string) {
  return prisma.$transaction(async (tx) => {
    const row = await lockRun(tx, run);
    await appendEvent(tx, row, { type: 'TEXT_DELTA', status: 'RUNNING', payload: { textDelta } });
    return { cancelRequested: row.cancelRequested };
  });
}

/** The attempt is alive: one fenced UPDATE (its row lock is the statement's own). */
export async function heartbeat(prisma: Prisma, run: Run): Promise<{ cancelRequested: boolean }> {
  const rows = await prisma.$queryRaw<{ cancelRequested: boolean }[]>`
    UPDATE "Job" SET "heartbeatAt" = ${new Date().toISOString()}::timestamp
    WHERE id = ${run.job.id}::uuid AND status = 'RUNNING' AND attempts = ${run.attempt}
    RETURNING "cancelRequested"`;
  if (rows.length === 0) {
    const now = await prisma.job.findUnique({ where: { id: run.job.id }, select: { status: true } });
    throw new JobLostError(run.job.id, now?.status);
  }
  return rows[0];
}

/** Assets + UsageRecord + SUCCEEDED (with its RESULT event) in one transaction. */
export function succeedRun(prisma: Prisma, run: Run, outcome: JobOutcome): Promise<void> {
  return prisma.$transaction(async (tx) => {
    const row = await lockRun(tx, run);
    if (outcome.assets.length > 0) {
      await tx.asset.createMany({
        data: outcome.assets.map((a) => ({ ...a, tenantId: row.tenantId, jobId: row.id })),
      });
      await settlePending(
        tx,
        row.id,
        outcome.assets.map((a) => a.key),
      );
    }
    await tx.usageRecord.create({ data: { tenantId: row.tenantId, jobId: row.id, ...outcome.usage } });
    await terminate(tx, row, 'SUCCEEDED', {
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
  });
}

export function endRun(prisma: Prisma, run: Run, status: 'FAILED' | 'CANCELED', error: JobError) {
  return prisma.$transaction(
    async (tx) => void (await terminate(tx, await lockRun(tx, run), status, { error })),
  );
}

/** RUNNING -> QUEUED (with a STATUS event); the caller's message stays the live one (retry/release). */
export function requeueRun(prisma: Prisma, run: Run, why: string): Promise<void> {
  return prisma.$transaction(async (tx) => {
    const row = await lockRun(tx, run);
    await tx.job.update({ where: { id: row.id }, data: { status: 'QUEUED', progress: 0 } });
    await appendEvent(tx, row, { type: 'STATUS', status: 'QUEUED', payload: { stage: why } });
  });
}

/**
 * The API's cancel: QUEUED -> CANCELED at once; RUNNING -> cancelRequested, which the worker reads
 * on its next write to the row (every step, token, preview and heartbeat); an ended job is
 * returned unchanged. NOT_FOUND for another tenant's job.
 */
export function requestCancel(prisma: Prisma, tenantId: string, jobId: string): Promise<Job> {
  return prisma.$transaction(async (tx) => {
    const row = await lockRow(tx, jobId, tenantId);
    if (!row) throw new AppError('NOT_FOUND', `job ${jobId} was not found`);
    if (row.status === 'QUEUED') {
      const error = { code: 'CANCELED', message: 'The job was canceled before it started.' };
      return (await terminate(tx, row, 'CANCELED', { error, data: { cancelRequested: true } })).job;
    }
    if (row.status === 'RUNNING' && !row.cancelRequested)
      return tx.job.update({ where: { id: jobId }, data: { cancelRequested: true } });
    return row;
  });
}

/** One event in a transaction of its own (tools and tests that write a job's log directly). */
export function recordEvent(prisma: Prisma, jobId: string, tenantId: string, input: EventInput) {
  return prisma.$transaction(async (tx) => {
    const row = await lockRow(tx, jobId, tenantId);
    if (!row) throw new AppError('NOT_FOUND', `job ${jobId} was not found`);
    return appendEvent(tx, row, input);
  });
}

/** Ends a job the way a worker would, outside any run (tests, tools). Null when it had ended. */
export function endJob(prisma: Prisma, jobId: string, status: Ending, end: Parameters<typeof terminate>[3]) {
  return prisma.$transaction(async (tx) => {
    const row = await lockRow(tx, jobId);
    return row && !isTerminalStatus(row.status) ? terminate(tx, row, status, end) : null;
  });
}

/**
 * Reconciler: a RUNNING job whose worker session is gone (no one holds its advisory lock, checked
 * again here under the row lock) gets a new message, so the next worker re-runs it now instead of
 * after the dead worker's lease. False when the job moved on or a worker holds it.
 */
export function reclaimFromDeadWorker(prisma: Prisma, queue: Queue, jobId: string): Promise<boolean> {
  return transition(prisma, async (tx, later) => {
    const row = await lockRow(tx, jobId);
    if (row?.status !== 'RUNNING') return false;
    const [{ free }] = await tx.$queryRaw<{ free: boolean }[]>`
      SELECT pg_try_advisory_xact_lock(hashtextextended(${jobLockKey(jobId)}, 7)) AS free`;
    if (!free) return false;
    await moveToNewMessage(tx, row, queue, later);
    return true;
  });
}

/** Reconciler: an unfinished job still named by `key`, whose message is lost, gets a new one. */
export function resendLostMessage(prisma: Prisma, queue: Queue, jobId: string, key: string | null) {
  return transition(prisma, async (tx, later) => {
    const row = await lockRow(tx, jobId);
    if (!row || isTerminalStatus(row.status) || row.queueToken !== key) return false;
    await moveToNewMessage(tx, row, queue, later);
    return true;
  });
}

/** Reconciler: the queue gave up on the job's live message (dead letter) -> FAILED. */
export function failDeadLettered(prisma: Prisma, message: { jobId: string; tenantId: string; key: string }) {
  return prisma.$transaction(async (tx) => {
    const row = await lockRow(tx, message.jobId, message.tenantId);
    if (!row || isTerminalStatus(row.status) || !isLiveMessage(row, message.key)) return false;
    await terminate(tx, row, 'FAILED', { error: DEAD_LETTER_ERROR });
    return true;
  });
}
