/**
 * The producer side of jobs, called by the API: create the Job row and its first event in one
 * transaction and hand `{jobId, tenantId}` to the queue.
 *
 * When the queue lives in the application database (pg-boss: `sendInTransaction`), the message
 * is inserted in that same transaction, after the event: a committed job always has exactly one
 * message, a rolled-back one has none, a worker cannot see the message before the Job row, and
 * the send costs no transaction of its own. Other backends (SQS) are sent to after the commit (a
 * worker must never receive a job it cannot read yet); if the process dies between commit and
 * send, the sweeper (sweeper.ts) re-sends QUEUED jobs that have sat unclaimed too long.
 */
import { createHash, randomUUID } from 'node:crypto';
import { type Job, type JobKind, Prisma as P } from '../generated/prisma/client.ts';
import { AppError } from '../shared/errors.ts';
import { checkIdempotencyKey } from '../shared/job-inputs.ts';
import { logger } from '../shared/logger.ts';
import type { Prisma } from '../storage/db.ts';
import { armQuotaCheckSql, quotaExceededFrom } from '../tenancy/quota.ts';
import { appendFirstEvent } from './event-log.ts';
import { lockJob, terminateJob } from './job-state.ts';
import type { HarmonJobPayload, JobQueue } from './queue/port.ts';
import { prismaSqlTransaction } from './queue/prisma-transaction.ts';

export interface EnqueueDeps {
  prisma: Prisma;
  /** `sendInTransaction`, when present, is used instead of `send` (see the file comment). */
  queue: Pick<JobQueue<HarmonJobPayload>, 'send' | 'sendInTransaction'>;
}

export interface EnqueueRequest {
  tenantId: string;
  kind: JobKind;
  /** Already validated (src/shared/job-inputs.ts); stored as-is and re-read by the worker. */
  input: Record<string, unknown>;
  idempotencyKey?: string;
  webhookUrl?: string;
  modelId: string;
  /**
   * Images this job reserves against the tenant's monthly quota (0/undefined: no check); must be
   * what `imagesOf` counts for `input`. Checked at the insert transaction's COMMIT under a
   * per-tenant lock, so concurrent requests cannot all pass.
   */
  quotaImages?: number;
}

/** JSON with object keys sorted at every level, so the hash ignores key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** What "the same request" means for idempotency: kind, model, input and webhook. */
export function inputHash(req: Pick<EnqueueRequest, 'kind' | 'modelId' | 'input' | 'webhookUrl'>): string {
  const canonical = canonicalJson({
    kind: req.kind,
    modelId: req.modelId,
    input: req.input,
    webhookUrl: req.webhookUrl ?? null,
  });
  return createHash('sha256').update(canonical).digest('hex');
}

export async function enqueueJob(deps: EnqueueDeps, req: EnqueueRequest): Promise<Job> {
  const { prisma, queue } = deps;
  checkIdempotencyKey(req.idempotencyKey);
  const hash = inputHash(req);
  const quotaImages = req.quotaImages ?? 0;
  if (req.idempotencyKey) {
    const existing = await findByKey(prisma, req.tenantId, req.idempotencyKey);
    if (existing) return sameOrConflict(existing, hash);
  }

  let job: Job;
  try {
    job = await prisma.$transaction(async (tx) => {
      // Checked by Postgres at COMMIT under the tenant's quota lock, counting this job: the lock
      // then serialises this tenant's enqueues only for the commit itself. A same-key request
      // racing this one waits on the unique index at its insert and then replays this job (the
      // catch below), so it never reserves twice.
      const created = await insertJob(tx, req, hash, quotaImages > 0);
      // seq 1 of a row only this transaction can see: no lock, no max(seq), NOTIFY in the insert.
      await appendFirstEvent(tx, {
        jobId: created.id,
        tenantId: req.tenantId,
        type: 'STATUS',
        status: 'QUEUED',
      });
      if (queue.sendInTransaction) {
        // A failure here rolls the job back with it: the client gets the error and no job exists.
        await queue.sendInTransaction(
          prismaSqlTransaction(tx),
          { jobId: created.id, tenantId: req.tenantId },
          { key: created.id },
        );
      }
      return created;
    });
  } catch (e) {
    const overQuota = quotaExceededFrom(e, quotaImages);
    if (overQuota) throw overQuota;
    // Two requests with the same key raced past the lookup: the loser reads the winner's job.
    if (req.idempotencyKey && isUniqueViolation(e)) {
      const existing = await findByKey(prisma, req.tenantId, req.idempotencyKey);
      if (existing) return sameOrConflict(existing, hash);
    }
    throw e;
  }
  // Its message committed with it.
  if (queue.sendInTransaction) return job;

  try {
    await queue.send({ jobId: job.id, tenantId: job.tenantId }, { key: job.id });
  } catch (e) {
    // The job is committed; the sweeper re-sends it. Failing the request here would make the
    // client retry and (without an idempotency key) create a second job.
    logger.warn({ err: e, jobId: job.id }, 'queue send failed after commit; the sweeper will re-send');
  }
  return job;
}

/**
 * QUEUED -> CANCELED at once (with its events); RUNNING -> cancelRequested, which the worker
 * polls between steps; a finished job is returned unchanged. NOT_FOUND for other tenants' jobs.
 */
export async function requestCancel(prisma: Prisma, tenantId: string, jobId: string): Promise<Job> {
  return prisma.$transaction(async (tx) => {
    const job = await lockJob(tx, tenantId, jobId);
    if (job.status === 'QUEUED') {
      const ended = await terminateJob(tx, {
        jobId,
        tenantId,
        status: 'CANCELED',
        error: { code: 'CANCELED', message: 'The job was canceled before it started.' },
        data: { cancelRequested: true },
        locked: job,
      });
      return ended?.job ?? job;
    }
    if (job.status === 'RUNNING' && !job.cancelRequested) {
      return tx.job.update({ where: { id: jobId }, data: { cancelRequested: true } });
    }
    return job;
  });
}

/**
 * The Job row in one statement, with the quota check armed in the same statement when `armQuota`
 * (a CTE the insert reads from, so it runs first). Values are filled as Prisma's job.create fills
 * them: client-side uuid, timestamp(3) columns holding the UTC wall clock (an ISO string cast to
 * ::timestamp keeps it). RETURNING * comes back through Prisma's raw-result typing as a Job.
 */
async function insertJob(
  tx: P.TransactionClient,
  req: EnqueueRequest,
  hash: string,
  armQuota: boolean,
): Promise<Job> {
  const now = new Date().toISOString();
  const arm = armQuota ? armQuotaCheckSql() : P.sql`SELECT NULL AS armed`;
  const rows = await tx.$queryRaw<Job[]>`
    WITH arm AS MATERIALIZED (${arm})
    INSERT INTO "Job" (id, "tenantId", kind, "modelId", input, "idempotencyKey", "inputHash",
                       "webhookUrl", "queuedAt", "createdAt", "updatedAt")
    SELECT ${randomUUID()}::uuid, ${req.tenantId}::uuid, ${req.kind}::"JobKind", ${req.modelId},
           ${JSON.stringify(req.input)}::jsonb, ${req.idempotencyKey ?? null}, ${hash},
           ${req.webhookUrl ?? null}, ${now}::timestamp, ${now}::timestamp, ${now}::timestamp
    FROM arm
    RETURNING *`;
  return rows[0];
}

function findByKey(prisma: Prisma, tenantId: string, idempotencyKey: string): Promise<Job | null> {
  return prisma.job.findUnique({ where: { tenantId_idempotencyKey: { tenantId, idempotencyKey } } });
}

function sameOrConflict(existing: Job, hash: string): Job {
  if (existing.inputHash === hash) return existing;
  throw new AppError(
    'CONFLICT',
    'This idempotencyKey was already used with different input; use a new key for a different request.',
    { details: { jobId: existing.id } },
  );
}

function isUniqueViolation(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  return err?.code === 'P2002' || /Unique constraint|23505/.test(err?.message ?? '');
}
