/**
 * Wall time of a generate batch, split among its jobs. A GPU worker bills GPU-ms per job
 * (gpuMs = meta.totalMs), so the batch's wall time is cut into consecutive segments and each
 * segment goes to the jobs it served in proportion to their rows: the text prefill and each MAR
 * step to every job still in the batch, a job's VAE decode and PNG encode to that job alone. The
 * JS time between segments goes with the segment that follows it. For a batch of one this is
 * exactly the request's wall time, as before batching.
 */
import type { BatchInfo, RunMetadata } from './events.ts';
import type { HarmonModel } from './harmon-model.ts';

/** One job's share of the batch so far. */
export interface JobShare {
  stageMs: Record<string, number>;
  ms: number;
  sessionMs: number;
}

export const newShare = (): JobShare => ({ stageMs: {}, ms: 0, sessionMs: 0 });

export class BatchMeter {
  private readonly t0 = performance.now();
  private last = this.t0;
  private readonly before;

  constructor(
    private readonly model: HarmonModel,
    private readonly start: { jobs: number; totalRows: number },
  ) {
    this.before = model.snapshot();
  }

  /** Runs `fn`; its wall time (plus the JS time since the last segment) goes to `parts` by weight. */
  async time<T>(stage: string, parts: Array<[JobShare, number]>, fn: () => Promise<T> | T): Promise<T> {
    const t = performance.now();
    const s0 = this.sessionMs();
    try {
      return await fn();
    } finally {
      const now = performance.now();
      const total = parts.reduce((a, [, w]) => a + w, 0) || 1;
      const session = this.sessionMs() - s0;
      for (const [share, w] of parts) {
        const f = w / total;
        share.stageMs[stage] = (share.stageMs[stage] ?? 0) + (now - t) * f;
        share.ms += (now - this.last) * f;
        share.sessionMs += session * f;
      }
      this.last = now;
    }
  }

  /** The job's metadata; the JS time since the last segment is its own. */
  finish(share: JobShare, rows: number): RunMetadata & { batch: BatchInfo } {
    const now = performance.now();
    share.ms += now - this.last;
    this.last = now;
    return {
      ...this.model.identity(),
      stageMs: share.stageMs,
      totalMs: share.ms,
      sessions: this.model.since(this.before),
      sessionMs: share.sessionMs,
      batch: { ...this.start, rows, wallMs: now - this.t0 },
    };
  }

  private sessionMs(): number {
    return Object.values(this.model.runtime.stats.msByGraph).reduce((a, b) => a + b, 0);
  }
}
