/**
 * Cross-job batching throughput (issue #14): images per second of b concurrent single-image
 * generate jobs run as ONE batch (one MAR loop, src/harmon/generate.ts) against the same b jobs
 * run one at a time, in process. The two modes alternate within each repetition (the order
 * flips every repetition), so a burst of load from other processes hits both; the ratio is
 * median(one at a time) / median(batched) wall for the same b images. At the largest b it also
 * runs the batch with the per-run row bound lifted (run-chunks.ts), to show what the bound costs.
 */
import os from 'node:os';
import { generate, generateBatch } from '../harmon/generate.ts';
import { HarmonModel } from '../harmon/harmon-model.ts';
import { rowTokenBudget } from '../model/run-budget.ts';
import { AppError } from '../shared/errors.ts';
import { percentile } from './harness.ts';

export interface BatchSizeFigures {
  jobs: number;
  /** Median wall ms of the b jobs as one batch / one after another. */
  batchedMs: number;
  sequentialMs: number;
  batchedImagesPerSecond: number;
  sequentialImagesPerSecond: number;
  /** batched images/s ÷ one-at-a-time images/s. */
  ratio: number;
  /** lm session runs of one batched request of b jobs (prefill + image-pass chunks). */
  lmRuns: number;
}

export interface BatchThroughputFigures {
  variant: string;
  size: number;
  steps: number;
  repetitions: number;
  /** Token-rows one session run may hold on this model (run-chunks.ts). */
  rowTokenBudget: number;
  bySize: Record<string, BatchSizeFigures>;
  /** The headline: ratio at the largest batch size (8). */
  ratio: number;
  /** The largest batch with the run bound lifted (one lm run per step): its ratio and lm runs. */
  unbounded: { ratio: number; batchedMs: number; lmRuns: number };
  loadAverage: { before: number[]; after: number[] };
}

export interface BatchBenchOptions {
  variant: string;
  modelDir: string;
  size: number;
  steps: number;
  batchSizes: number[];
  repetitions: number;
  log: (line: string) => void;
}

const PROMPTS = [
  'a watercolor painting of a lighthouse on a cliff',
  'a red fox in the snow',
  'an astronaut riding a horse on the moon, oil painting',
  'a bowl of ramen',
  'a quiet street in Kyoto at dawn after the rain',
  'a cat',
  'a sailing boat on a stormy sea, dramatic light',
  'a cup of coffee on a wooden table',
];

export async function runBatchThroughput(o: BatchBenchOptions): Promise<BatchThroughputFigures> {
  const before = os.loadavg();
  const model = await HarmonModel.open(o.modelDir);
  try {
    const jobs = (b: number, rep: number) =>
      Array.from({ length: b }, (_, i) => ({
        prompt: PROMPTS[i % PROMPTS.length],
        seed: 1000 + rep * 64 + i,
        steps: o.steps,
        size: o.size,
        count: 1,
      }));
    const batched = async (b: number, rep: number, budget?: number) => {
      const t = performance.now();
      const out = await generateBatch(
        model,
        jobs(b, rep).map((input) => ({ input })),
        budget ? { rowTokenBudget: budget } : {},
      );
      const ms = performance.now() - t;
      const values = out.map((r) => {
        if (r.status === 'rejected')
          throw new AppError('INTERNAL', `a batched bench job failed: ${String(r.reason)}`);
        return r.value;
      });
      return { ms, lmRuns: values[0].meta.sessions.runsByGraph.lm ?? 0 };
    };
    const sequential = async (b: number, rep: number) => {
      const t = performance.now();
      for (const input of jobs(b, rep)) await generate(model, input);
      return performance.now() - t;
    };
    const largest = Math.max(...o.batchSizes);
    // Warm-up: ORT plans memory per shape on a first run; both modes and every batch shape once.
    for (const b of o.batchSizes) await batched(b, -1);
    await batched(largest, -1, Number.POSITIVE_INFINITY);
    await sequential(1, -1);
    const samples = new Map<number, { batched: number[]; sequential: number[]; lmRuns: number }>();
    const unbounded: number[] = [];
    let unboundedRuns = 0;
    for (let rep = 0; rep < o.repetitions; rep++) {
      for (const b of o.batchSizes) {
        const s = samples.get(b) ?? { batched: [], sequential: [], lmRuns: 0 };
        samples.set(b, s);
        const runBatched = async () => {
          const r = await batched(b, rep);
          s.batched.push(r.ms);
          s.lmRuns = r.lmRuns;
        };
        const runSequential = async () => {
          s.sequential.push(await sequential(b, rep));
        };
        if (rep % 2 === 0) {
          await runSequential();
          await runBatched();
        } else {
          await runBatched();
          await runSequential();
        }
        if (b === largest) {
          const r = await batched(b, rep, Number.POSITIVE_INFINITY);
          unbounded.push(r.ms);
          unboundedRuns = r.lmRuns;
        }
        o.log(
          `batch throughput (${o.variant}) rep ${rep + 1}/${o.repetitions}, ${b} jobs: batched ${s.batched.at(-1)?.toFixed(0)} ms, one at a time ${s.sequential.at(-1)?.toFixed(0)} ms`,
        );
      }
    }
    const med = (xs: number[]) => percentile(xs, 0.5);
    const bySize: Record<string, BatchSizeFigures> = {};
    for (const [b, s] of samples) {
      const batchedMs = med(s.batched);
      const sequentialMs = med(s.sequential);
      bySize[String(b)] = {
        jobs: b,
        batchedMs,
        sequentialMs,
        batchedImagesPerSecond: b / (batchedMs / 1000),
        sequentialImagesPerSecond: b / (sequentialMs / 1000),
        ratio: sequentialMs / batchedMs,
        lmRuns: s.lmRuns,
      };
    }
    const head = bySize[String(largest)];
    return {
      variant: o.variant,
      size: o.size,
      steps: o.steps,
      repetitions: o.repetitions,
      rowTokenBudget: rowTokenBudget(model.config),
      bySize,
      ratio: head.ratio,
      unbounded: {
        ratio: head.sequentialMs / med(unbounded),
        batchedMs: med(unbounded),
        lmRuns: unboundedRuns,
      },
      loadAverage: { before, after: os.loadavg() },
    };
  } finally {
    await model.close();
  }
}
