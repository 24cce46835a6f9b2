// Job and JobEvent values for the playground's DOM-free tests (client-lib, follow-job): job j1 on
// the tiny demo model, RUNNING, with each file setting only what it cares about.
import type { Job, JobEvent } from '../../src/web/lib/operations.ts';

export const job = (over: Partial<Job> = {}): Job => ({
  id: 'j1',
  kind: 'GENERATE',
  status: 'RUNNING',
  progress: 0,
  model: 'tiny-demo',
  params: { steps: 4 },
  images: [],
  createdAt: '2025-01-01T00:00:00Z',
  ...over,
});

/** A PROGRESS event of job j1 with sequence number `seq`. */
export const ev = (seq: number, over: Partial<JobEvent> = {}): JobEvent => ({
  jobId: 'j1',
  seq,
  type: 'PROGRESS',
  status: 'RUNNING',
  at: '2025-01-01T00:00:00Z',
  ...over,
});
