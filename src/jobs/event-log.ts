/**
 * The durable, per-job event log. Every event a client can see is first a JobEvent row with a
 * gap-free `seq` (1, 2, 3 ... per job); live fan-out (event-bus.ts) is only a doorbell that says
 * "job X has seq N now", so a subscriber that misses a NOTIFY loses nothing — it re-reads the log.
 */
import type { JobStatus, Prisma as P } from '../generated/prisma/client.ts';
import { AppError } from '../shared/errors.ts';
import type { Prisma } from '../storage/db.ts';
import {
  JOB_EVENTS_CHANNEL,
  type JobEventNotice,
  type JobEventPayload,
  type JobEventRecord,
  type JobEventType,
  toEventRecord,
} from './events.ts';

export type Tx = P.TransactionClient;

export interface AppendEventInput {
  jobId: string;
  tenantId: string;
  type: JobEventType;
  /** The job's status at this event (stored in the payload). */
  status: JobStatus;
  payload?: Omit<JobEventPayload, 'status'>;
}

/**
 * Appends one event inside the caller's transaction. The job row is locked FOR UPDATE first, so
 * concurrent appenders for the same job serialise and `max(seq) + 1` can never collide; the
 * NOTIFY is transactional too, so listeners hear about the event only once it is committed and
 * readable (never a doorbell for a row they cannot see yet).
 */
export async function appendEvent(tx: Tx, input: AppendEventInput): Promise<JobEventRecord> {
  const locked = await tx.$queryRaw<{ id: string }[]>`
    SELECT id FROM "Job" WHERE id = ${input.jobId}::uuid AND "tenantId" = ${input.tenantId}::uuid FOR UPDATE`;
  if (locked.length === 0) throw new AppError('NOT_FOUND', `job ${input.jobId} was not found`);
  const [{ next }] = await tx.$queryRaw<{ next: number }[]>`
    SELECT COALESCE(MAX(seq), 0)::int + 1 AS next FROM "JobEvent" WHERE "jobId" = ${input.jobId}::uuid`;
  const payload: JobEventPayload = { ...input.payload, status: input.status };
  const row = await tx.jobEvent.create({
    data: {
      jobId: input.jobId,
      tenantId: input.tenantId,
      seq: next,
      type: input.type,
      payload: payload as unknown as P.InputJsonValue,
    },
  });
  const notice: JobEventNotice = { jobId: input.jobId, tenantId: input.tenantId, seq: next };
  await tx.$executeRaw`SELECT pg_notify(${JOB_EVENTS_CHANNEL}, ${JSON.stringify(notice)})`;
  return toEventRecord(row);
}

/** appendEvent in a transaction of its own (for callers that write nothing else). */
export function appendEventNow(prisma: Prisma, input: AppendEventInput): Promise<JobEventRecord> {
  return prisma.$transaction((tx) => appendEvent(tx, input));
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
