/**
 * Pipeline benchmark: generate on the tiny and "small" configs, in process (no worker hop), with
 * warm-up and repetitions. Reports per-stage wall time, session runs per image and the share of
 * wall time spent in JS orchestration, (wall − Σ session-run ms) / wall — the goal is ≤ 3 %.
 * The models are the random-weight builds run-bench.ts makes (or --model), one directory per variant.
 * Real sizes (0.5b, 1.5b) run one request each in a child process of their own (model-bench.ts),
 * so the bench process never holds gigabytes of weights and each peak RSS is that request's.
 */
import type { RunMetadata } from '../harmon/events.ts';
import { generate } from '../harmon/generate.ts';
import { HarmonModel } from '../harmon/harmon-model.ts';
import type { LoadStats } from '../runtime/sessions.ts';
import { type BatchThroughputFigures, runBatchThroughput } from './batch-bench.ts';
import { percentile } from './harness.ts';
import type { PipelineConfigFigures } from './report.ts';

export interface PipelineBenchCase {
  name: string;
  size: number;
  steps: number;
  count: number;
  warmup: number;
  repetitions: number;
}

export interface PipelineBenchEntry {
  name: string;
  modelId: string;
  demo: boolean;
  size: number;
  steps: number;
  count: number;
  repetitions: number;
  /** Median wall ms per stage (one request = `count` images). */
  stageMs: Record<string, number>;
  totalMs: { median: number; min: number; max: number };
  sessionMs: number;
  sessionRunsPerImage: number;
  /** Median over repetitions of (wall − Σ session ms) / wall. */
  jsOverheadShare: number;
  /** What opening the model cost (file checks, session creation per graph). */
  load: LoadStats;
}

/** One case per variant; a run takes those it has a model directory for. */
export const CASES: readonly PipelineBenchCase[] = [
  { name: 'tiny', size: 64, steps: 8, count: 1, warmup: 1, repetitions: 3 },
  { name: 'small', size: 128, steps: 16, count: 1, warmup: 1, repetitions: 3 },
  // Real sizes: the reference request (256², 4 MAR steps), once, cold, as a CLI user runs it.
  { name: '0.5b', size: 256, steps: 4, count: 1, warmup: 0, repetitions: 1 },
  { name: '1.5b', size: 256, steps: 4, count: 1, warmup: 0, repetitions: 1 },
];

/** The cross-job batching case (batch-bench.ts): batch sizes 2 and 4 too, for WORKER_MAX_BATCH. */
export const BATCH_CASE = { variant: 'small', size: 256, steps: 4, batchSizes: [2, 4, 8], repetitions: 3 };

/** Variants benchmarked in a child process each (model-bench.ts), never in the bench process. */
export const REAL_SIZES: readonly string[] = ['0.5b', '1.5b'];

const median = (xs: number[]) => percentile(xs, 0.5);

export async function runPipelineBench(
  cases: PipelineBenchCase[],
  modelDirs: Record<string, string>,
  log: (line: string) => void,
): Promise<PipelineBenchEntry[]> {
  const entries: PipelineBenchEntry[] = [];
  for (const c of cases) {
    // Opened as a serving engine (harmon generate, the worker) opens it.
    const model = await HarmonModel.open(modelDirs[c.name]);
    try {
      const input = {
        prompt: 'a watercolor painting of a lighthouse on a cliff',
        seed: 1,
        steps: c.steps,
        size: c.size,
        count: c.count,
      };
      for (let i = 0; i < c.warmup; i++) await generate(model, input);
      const runs: RunMetadata[] = [];
      for (let i = 0; i < c.repetitions; i++) {
        const r = await generate(model, { ...input, seed: i + 2 });
        runs.push(r.meta);
        log(`${c.name}: run ${i + 1}/${c.repetitions} ${r.meta.totalMs.toFixed(0)} ms`);
      }
      const stages = [...new Set(runs.flatMap((m) => Object.keys(m.stageMs)))];
      const totals = runs.map((m) => m.totalMs);
      entries.push({
        name: c.name,
        modelId: model.manifest.modelId,
        demo: model.manifest.demo,
        size: c.size,
        steps: c.steps,
        count: c.count,
        repetitions: c.repetitions,
        stageMs: Object.fromEntries(stages.map((s) => [s, median(runs.map((m) => m.stageMs[s] ?? 0))])),
        totalMs: { median: median(totals), min: Math.min(...totals), max: Math.max(...totals) },
        sessionMs: median(runs.map((m) => m.sessionMs)),
        sessionRunsPerImage: runs[0].sessions.runs / c.count,
        jsOverheadShare: median(runs.map((m) => (m.totalMs - m.sessionMs) / m.totalMs)),
        load: model.runtime.loadStats,
      });
    } finally {
      await model.close();
    }
  }
  return entries;
}

/**
 * Provider for `harmon bench` (src/bench/run-bench.ts `PipelineBenchFn`): benchmarks every
 * variant it is given a model directory for, with the default case settings of that variant.
 */
export async function pipelineBenchProvider(ctx: {
  modelDirs: Record<string, string>;
  quick: boolean;
  log: (line: string) => void;
}): Promise<{ configs: PipelineConfigFigures[]; batchThroughput: BatchThroughputFigures | null }> {
  const cases = CASES.filter((c) => c.name in ctx.modelDirs && !REAL_SIZES.includes(c.name));
  const entries = await runPipelineBench(cases, ctx.modelDirs, ctx.log);
  // Issue #14's figure is stated for the small config (a full run): 8 single-image jobs, 256², 4 steps.
  const batchThroughput = ctx.modelDirs.small
    ? await runBatchThroughput({ ...BATCH_CASE, modelDir: ctx.modelDirs.small, log: ctx.log })
    : null;
  return {
    batchThroughput,
    configs: entries.map((e) => ({
      variant: e.name,
      size: e.size,
      steps: e.steps,
      stageMs: e.stageMs,
      totalMs: e.totalMs.median,
      jsOverheadShare: e.jsOverheadShare,
      sessionRunsPerImage: e.sessionRunsPerImage,
      details: {
        modelId: e.modelId,
        count: e.count,
        repetitions: e.repetitions,
        sessionMs: e.sessionMs,
        totalMsRange: e.totalMs,
      },
    })),
  };
}
