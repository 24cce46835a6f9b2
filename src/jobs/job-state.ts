/**
 * Terminal transitions of a job, in one place: whoever ends a job (worker success or failure,
 * cancel while QUEUED, worker honouring a cancel request) writes the same rows in the same
 * transaction — final Job status, the ERROR event for failures, the terminal STATUS event, and a
 * WebhookDelivery row when the job has a webhook — so no path can forget one of them.
 */

import { appendEvent, lockJobRow, type Tx } from '../events/event-log.ts';
import type { JobEventPayload, JobEventRecord } from '../events/job-events.ts';
import { isTerminalStatus } from '../events/job-events.ts';
import type { Job, JobStatus, Prisma as P } from '../generated/prisma/client.ts';

export interface TerminateInput {
  jobId: string;
  tenantId: string;
  status: Extract<JobStatus, 'SUCCEEDED' | 'FAILED' | 'CANCELED'>;
  error?: { code: string; message: string };
  /** Extra Job columns to set (text, gpuMs, progress ...). */
  data?: Omit<P.JobUncheckedUpdateManyInput, 'status' | 'tenantId' | 'id'>;
  /** Payload of a RESULT event written just before the terminal STATUS (SUCCEEDED only). */
  result?: Omit<JobEventPayload, 'status'>;
  /** The row lockJob returned earlier in this transaction: it is not locked and read again. */
  locked?: Job;
}

/** Locks the job row and returns it; NOT_FOUND for another tenant's or a missing job. */
export async function lockJob(tx: Tx, tenantId: string, jobId: string): Promise<Job> {
  await lockJobRow(tx, tenantId, jobId);
  return tx.job.findFirstOrThrow({ where: { id: jobId, tenantId } });
}

/**
 * Ends the job unless it already ended (returns null then, so a re-delivered job can never get a
 * second result). Must run inside the caller's transaction.
 */
export async function terminateJob(
  tx: Tx,
  input: TerminateInput,
): Promise<{ job: Job; events: JobEventRecord[] } | null> {
  const current = input.locked ?? (await lockJob(tx, input.tenantId, input.jobId));
  if (isTerminalStatus(current.status)) return null;
  const job = await tx.job.update({
    where: { id: input.jobId },
    data: {
      ...input.data,
      status: input.status,
      finishedAt: new Date(),
      ...(input.error ? { errorCode: input.error.code, errorMessage: input.error.message } : {}),
      ...(input.status === 'SUCCEEDED' ? { progress: 1 } : {}),
    },
  });
  const base = { jobId: input.jobId, tenantId: input.tenantId, status: input.status };
  const events: JobEventRecord[] = [];
  if (input.result) events.push(await appendEvent(tx, { ...base, type: 'RESULT', payload: input.result }));
  if (input.error && input.status === 'FAILED') {
    events.push(await appendEvent(tx, { ...base, type: 'ERROR', payload: { error: input.error } }));
  }
  const final = await appendEvent(tx, {
    ...base,
    type: 'STATUS',
    payload: input.error ? { error: input.error } : {},
  });
  events.push(final);
  if (job.webhookUrl) {
    // Delivered later from the log by webhooks.ts; the unique (jobId, seq, url) makes this idempotent.
    await tx.webhookDelivery.createMany({
      data: [{ tenantId: input.tenantId, jobId: input.jobId, eventSeq: final.seq, url: job.webhookUrl }],
      skipDuplicates: true,
    });
  }
  return { job, events };
}
