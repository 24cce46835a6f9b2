/**
 * The job event vocabulary shared by the event log (writer), the event bus (fan-out) and the API
 * (GraphQL `JobEvent`). The JobEvent table stores `type` and a JSON `payload`; the job's status at
 * the time of the event always travels inside the payload (`payload.status`), so a subscriber can
 * render any event without reading the Job row.
 */
import type { JobEvent, JobStatus } from '../generated/prisma/client.ts';

export const EVENT_TYPES = ['STATUS', 'PROGRESS', 'PREVIEW', 'TEXT_DELTA', 'RESULT', 'ERROR'] as const;
export type JobEventType = (typeof EVENT_TYPES)[number];

export const TERMINAL_STATUSES: readonly JobStatus[] = ['SUCCEEDED', 'FAILED', 'CANCELED'];

export function isTerminalStatus(status: string): boolean {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

/** Per-type fields; every field is optional so one shape serves all event types. */
export interface JobEventPayload {
  status: JobStatus;
  /** PROGRESS / PREVIEW: 1-based step and the total. */
  step?: number;
  totalSteps?: number;
  /** Free-form stage name from the pipeline ("prefill", "mar", "decode" ...). */
  stage?: string;
  /** PREVIEW: Asset id of the preview image (role PREVIEW). */
  previewAssetId?: string;
  /** TEXT_DELTA: the decoded text added by this event. */
  textDelta?: string;
  /** RESULT: output asset ids (generate) and/or the full text (describe). */
  assetIds?: string[];
  text?: string;
  /** ERROR (and the FAILED/CANCELED STATUS event): why. */
  error?: { code: string; message: string };
}

/** What readers get: the stored row with its payload typed. */
export type JobEventRecord = Omit<JobEvent, 'payload' | 'type'> & {
  type: JobEventType;
  payload: JobEventPayload;
};

export function toEventRecord(row: JobEvent): JobEventRecord {
  return row as unknown as JobEventRecord;
}

/** True for the event after which a job's stream completes: a STATUS event with a terminal status. */
export function isTerminalEvent(e: Pick<JobEventRecord, 'type' | 'payload'>): boolean {
  return e.type === 'STATUS' && isTerminalStatus(e.payload.status);
}

/** NOTIFY channel and message shape (small: Postgres caps a payload at 8000 bytes). */
export const JOB_EVENTS_CHANNEL = 'harmon_job_events';
export interface JobEventNotice {
  jobId: string;
  tenantId: string;
  seq: number;
}
