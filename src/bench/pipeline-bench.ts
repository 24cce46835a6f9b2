/**
 * Pipeline benchmark: generate on the tiny and "small" configs, in process (no worker hop), with
 * warm-up and repetitions. Reports per-stage wall time, session runs per image and the share of
 * wall time spent in JS orchestration, (wall − Σ session-run ms) / wall — the goal is ≤ 3 %.
 * Models are random-weight builds cached like the demo model (built on first use).
 *
 * The result object keeps `stageMs`, `sessionRunsPerImage` and `jsOverheadShare` at the top of
 * each config entry; the benchmark suite (issue #7) extends it.
 */
import { ensureDemoModel } from '../harmon/demo-model.ts';
import type { RunMetadata } from '../harmon/events.ts';
import { generate } from '../harmon/generate.ts';
import { HarmonModel } from '../harmon/harmon-model.ts';
import { HARMON_SMALL, HARMON_TINY, type HarmonConfig } from '../onnx/config.ts';
import type { PipelineConfigFigures } from './report.ts';

export interface PipelineBenchCase {
  name: 'tiny' | 'small';
  config: HarmonConfig;
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
}

export interface PipelineBenchResult {
  machine: { cpus: number; node: string; platform: string };
  entries: PipelineBenchEntry[];
  /** The entry of the largest config run (small when run, else tiny), for quick reading. */
  stageMs: Record<string, number>;
  sessionRunsPerImage: number;
  jsOverheadShare: number;
}

export function defaultCases(quick: boolean): PipelineBenchCase[] {
  const tiny: PipelineBenchCase = {
    name: 'tiny',
    config: HARMON_TINY,
    size: 64,
    steps: 8,
    count: 1,
    warmup: 1,
    repetitions: 3,
  };
  const small: PipelineBenchCase = {
    name: 'small',
    config: HARMON_SMALL,
    size: 128,
    steps: 16,
    count: 1,
    warmup: 1,
    repetitions: 3,
  };
  return quick ? [tiny] : [tiny, small];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export async function runPipelineBench(
  cases: PipelineBenchCase[],
  opts: { modelDir?: string; modelDirs?: Record<string, string>; log?: (line: string) => void } = {},
): Promise<PipelineBenchResult> {
  const log = opts.log ?? (() => {});
  const entries: PipelineBenchEntry[] = [];
  const { availableParallelism } = await import('node:os');
  for (const c of cases) {
    const dir =
      opts.modelDirs?.[c.name] ??
      (opts.modelDir && c.name === 'tiny'
        ? opts.modelDir
        : await ensureDemoModel({
            name: c.name === 'tiny' ? undefined : `${c.name}-bench`,
            config: c.config,
            onBuild: (d) => log(`building the random-weight ${c.name} model into ${d}`),
          }));
    const model = await HarmonModel.open(dir);
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
      });
    } finally {
      await model.close();
    }
  }
  const head = entries[entries.length - 1];
  return {
    machine: {
      cpus: availableParallelism(),
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
    },
    entries,
    stageMs: head.stageMs,
    sessionRunsPerImage: head.sessionRunsPerImage,
    jsOverheadShare: head.jsOverheadShare,
  };
}

/** A plain-text table: one column per config, one row per stage plus the summary rows. */
export function formatPipelineTable(r: PipelineBenchResult): string {
  const cols = r.entries;
  const stages = [...new Set(cols.flatMap((e) => Object.keys(e.stageMs)))];
  const rows: string[][] = [['', ...cols.map((e) => `${e.name} ${e.size}px T=${e.steps}`)]];
  for (const s of stages) rows.push([`${s} ms`, ...cols.map((e) => (e.stageMs[s] ?? 0).toFixed(1))]);
  rows.push(['total ms (median)', ...cols.map((e) => e.totalMs.median.toFixed(1))]);
  rows.push(['session ms', ...cols.map((e) => e.sessionMs.toFixed(1))]);
  rows.push(['session runs / image', ...cols.map((e) => String(e.sessionRunsPerImage))]);
  rows.push(['JS overhead share', ...cols.map((e) => `${(e.jsOverheadShare * 100).toFixed(2)} %`)]);
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows
    .map((row) =>
      row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  '),
    )
    .join('\n');
}

/**
 * Provider for `harmon bench` (src/bench/run-bench.ts `PipelineBenchFn`): benchmarks every
 * variant it is given a model directory for, with the default case settings of that variant.
 */
export async function pipelineBenchProvider(ctx: {
  modelDirs: Record<string, string>;
  quick: boolean;
  log: (line: string) => void;
}): Promise<{ configs: PipelineConfigFigures[] }> {
  const cases = defaultCases(false).filter((c) => c.name in ctx.modelDirs);
  const r = await runPipelineBench(cases, { modelDirs: ctx.modelDirs, log: ctx.log });
  return {
    configs: r.entries.map((e) => ({
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
