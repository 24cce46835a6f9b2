/**
 * The durable, per-job event log. Every event a client can see is first a JobEvent row with a
 * gap-free `seq` (1, 2, 3 ... per job); live fan-out (event-bus.ts) is only a doorbell that says
 * "job X has seq N now", so a subscriber that misses a NOTIFY loses nothing — it re-reads the log.
 */
import { randomUUID } from 'node:crypto';
import type { JobEvent, JobStatus, Prisma as P } from '../generated/prisma/client.ts';
import type { Prisma } from '../storage/db.ts';
import {
  JOB_EVENTS_CHANNEL,
  type JobEventNotice,
  type JobEventPayload,
  type JobEventRecord,
  type JobEventType,
  toEventRecord,
} from './job-events.ts';

export type Tx = P.TransactionClient;

declare const rowLocked: unique symbol;
/**
 * A Job row that the caller's transaction holds FOR UPDATE. Only the job lifecycle
 * (src/jobs/job-lifecycle.ts), which owns that lock, hands these out; appendEvent takes one so an
 * event can only be appended under the lock of the transition that writes it.
 */
export type LockedJob = { readonly id: string; readonly tenantId: string; readonly [rowLocked]: true };

export interface AppendEventInput {
  jobId: string;
  tenantId: string;
  type: JobEventType;
  /** The job's status at this event (stored in the payload). */
  status: JobStatus;
  payload?: Omit<JobEventPayload, 'status'>;
}

export type EventInput = Omit<AppendEventInput, 'jobId' | 'tenantId'>;

/**
 * Appends one event to a job whose row the caller's transaction has locked. The lock serialises
 * appenders of the same job, so `max(seq) + 1` can never collide; the NOTIFY is transactional
 * too, so listeners hear about the event only once it is committed and readable (never a doorbell
 * for a row they cannot see yet).
 */
export async function appendEvent(tx: Tx, job: LockedJob, input: EventInput): Promise<JobEventRecord> {
  const [{ next }] = await tx.$queryRaw<{ next: number }[]>`
    SELECT COALESCE(MAX(seq), 0)::int + 1 AS next FROM "JobEvent" WHERE "jobId" = ${job.id}::uuid`;
  const payload: JobEventPayload = { ...input.payload, status: input.status };
  const row = await tx.jobEvent.create({
    data: {
      jobId: job.id,
      tenantId: job.tenantId,
      seq: next,
      type: input.type,
      payload: payload as unknown as P.InputJsonValue,
    },
  });
  const notice: JobEventNotice = { jobId: job.id, tenantId: job.tenantId, seq: next };
  await tx.$executeRaw`SELECT pg_notify(${JOB_EVENTS_CHANNEL}, ${JSON.stringify(notice)})`;
  return toEventRecord(row);
}

/**
 * The first event of a job the caller has just inserted in `tx` (enqueueJob): seq is 1 by
 * construction and no other transaction can see the job yet, so no row lock is needed and the
 * max(seq) read is skipped, and the insert and its NOTIFY go in ONE statement (a data-modifying
 * CTE runs exactly once; the SELECT fires one pg_notify per inserted row). Channel and payload are
 * exactly appendEvent's, so subscribers cannot tell the two apart. Called on a job that already
 * has events, the (jobId, seq) unique key rejects it rather than writing a second seq 1.
 */
export async function appendFirstEvent(tx: Tx, input: AppendEventInput): Promise<JobEventRecord> {
  const payload: JobEventPayload = { ...input.payload, status: input.status };
  const notice: JobEventNotice = { jobId: input.jobId, tenantId: input.tenantId, seq: 1 };
  // id and createdAt are filled here as Prisma fills them for jobEvent.create (client-side uuid;
  // timestamp(3) holding the UTC wall clock, which an ISO string cast to ::timestamp keeps).
  const rows = await tx.$queryRaw<(JobEvent & { notified: string })[]>`
    WITH e AS (
      INSERT INTO "JobEvent" (id, "jobId", "tenantId", seq, type, payload, "createdAt")
      VALUES (${randomUUID()}::uuid, ${input.jobId}::uuid, ${input.tenantId}::uuid, 1, ${input.type},
              ${JSON.stringify(payload)}::jsonb, ${new Date().toISOString()}::timestamp)
      RETURNING id, "jobId", "tenantId", seq, type, payload, "createdAt")
    SELECT e.*, pg_notify(${JOB_EVENTS_CHANNEL}, ${JSON.stringify(notice)})::text AS notified FROM e`;
  const { notified: _void, ...row } = rows[0];
  return toEventRecord(row);
}

/** Events of the tenant's job with seq > afterSeq, oldest first. Another tenant's job reads as empty. */
export async function readEvents(
  prisma: Prisma,
  tenantId: string,
  jobId: string,
  afterSeq = 0,
  take?: number,
): Promise<JobEventRecord[]> {
  const rows = await prisma.jobEvent.findMany({
    where: { jobId, tenantId, seq: { gt: afterSeq } },
    orderBy: { seq: 'asc' },
    take,
  });
  return rows.map(toEventRecord);
}

/** Events of any of the tenant's jobs created at or after `since`, for the tenant-wide stream. */
export async function readTenantEventsSince(
  prisma: Prisma,
  tenantId: string,
  since: Date,
): Promise<JobEventRecord[]> {
  const rows = await prisma.jobEvent.findMany({
    where: { tenantId, createdAt: { gte: since } },
    orderBy: [{ createdAt: 'asc' }, { seq: 'asc' }],
  });
  return rows.map(toEventRecord);
}
