/**
 * What the job panel shows, as a pure function of the job snapshot and its events. Events are
 * applied at most once by seq: a resubscription (reconnect, reload) may replay some, and a
 * replayed TEXT_DELTA must not duplicate text.
 */
import { type Job, type JobEvent, type JobStatus, TERMINAL } from './operations.ts';

export type JobView = {
  jobId: string;
  kind: Job['kind'];
  status: JobStatus;
  /** Last applied event seq (the `afterSeq` of a resubscription). */
  seq: number;
  step: number;
  totalSteps: number;
  stage?: string;
  previewUrl?: string;
  text: string;
  images: Job['images'];
  error?: { code: string; message: string };
};

export function viewFromJob(job: Job, seq = 0): JobView {
  const totalSteps = Number(job.params?.steps ?? 0) || 0;
  return {
    jobId: job.id,
    kind: job.kind,
    status: job.status,
    seq,
    step: Math.round(job.progress * totalSteps),
    totalSteps,
    text: job.text ?? '',
    images: job.images ?? [],
    error: job.error ?? undefined,
  };
}

export function applyEvent(view: JobView, e: JobEvent): JobView {
  if (e.jobId !== view.jobId || e.seq <= view.seq) return view;
  const next: JobView = { ...view, seq: e.seq, status: e.status };
  if (e.step != null) next.step = e.step;
  if (e.totalSteps != null) next.totalSteps = e.totalSteps;
  if (e.stage) next.stage = e.stage;
  switch (e.type) {
    case 'PREVIEW':
      if (e.previewUrl) next.previewUrl = e.previewUrl;
      break;
    case 'TEXT_DELTA':
      next.text = view.text + (e.textDelta ?? '');
      break;
    case 'RESULT':
      if (e.text != null) next.text = e.text;
      break;
    case 'ERROR':
      if (e.error) next.error = e.error;
      break;
  }
  if (e.status === 'SUCCEEDED' && next.totalSteps) next.step = next.totalSteps;
  return next;
}

export const isTerminal = (v: JobView): boolean => TERMINAL.has(v.status);

/** 0..1 for the progress bar. */
export function fraction(v: JobView): number {
  if (v.status === 'SUCCEEDED') return 1;
  return v.totalSteps > 0 ? Math.min(1, v.step / v.totalSteps) : 0;
}
