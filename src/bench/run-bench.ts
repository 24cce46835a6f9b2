/**
 * `harmon bench` orchestration: builds the benchmark models (or takes --model), runs each
 * benchmark under its budget, and assembles the report. Benchmarks owned elsewhere (the generate
 * pipeline, the API) come in as provider functions, so this file only maps their figures; a
 * provider that is absent or fails leaves its keys null with the reason in `notMeasured`, and the
 * other benchmarks still run.
 *
 *   models (tiny; + small in a full run) ─► sampler: fused vs per-step ─► describe ─► pipeline ─► api
 *     ─► targets ─► report JSON + chart
 *
 * With --model DIR the model section (model-bench.ts: bytes, load per graph, peak RSS of one
 * generate and one describe, each in a fresh process) comes first. A real-size model (0.5b, 1.5b)
 * is measured only there: its generate and describe figures fill the pipeline and describe
 * sections, and the in-process benchmarks, which would hold its weights in the bench process, do
 * not run.
 */
import os from 'node:os';
import { HARMON_SMALL, HARMON_TINY } from '../model/config.ts';
import { readManifest } from '../model/model-dir.ts';
import { ensureDemoModel } from '../onnx/demo-model.ts';
import type { BatchThroughputFigures } from './batch-bench.ts';
import { runDescribeBench } from './describe-bench.ts';
import { type Measurement, type MeasureOptions, peakRssMb } from './harness.ts';
import { machineInfo } from './machine.ts';
import { runModelBench } from './model-bench.ts';
import { REAL_SIZES } from './pipeline-bench.ts';
import {
  API_FIGURE_KEYS,
  type ApiFigures,
  type BenchReport,
  type DescribeFigures,
  type ModelFigures,
  type PipelineConfigFigures,
  REPORT_SCHEMA_VERSION,
  type SamplerFigures,
} from './report.ts';
import { runSamplerBench } from './sampler-bench.ts';
import { checkTargets } from './targets.ts';

export interface PipelineBenchContext {
  /** Model directory per variant, e.g. { tiny: '/tmp/…/tiny', small: '/tmp/…/small' }. */
  modelDirs: Record<string, string>;
  quick: boolean;
  log: (line: string) => void;
}
export type PipelineBenchFn = (ctx: PipelineBenchContext) => Promise<{
  configs: PipelineConfigFigures[];
  measurements?: Measurement[];
  /** Cross-job batching (batch-bench.ts); null when the run has no small model (quick mode). */
  batchThroughput?: BatchThroughputFigures | null;
}>;
export type ApiBenchFn = (ctx: {
  quick: boolean;
  log: (line: string) => void;
}) => Promise<{ figures: ApiFigures; measurements?: Measurement[] }>;

/** Repetitions and wall-clock budgets of one mode; tests shrink them. */
export interface BenchBudget {
  sampler: MeasureOptions & { tokens: number };
  describe: MeasureOptions & { maxTokens: number };
}

export const QUICK_BUDGET: BenchBudget = {
  sampler: { warmup: 3, reps: 30, maxMs: 30_000, tokens: 16 },
  describe: { warmup: 1, reps: 5, maxMs: 30_000, maxTokens: 16 },
};
export const FULL_BUDGET: BenchBudget = {
  sampler: { warmup: 3, reps: 50, maxMs: 90_000, tokens: 16 },
  describe: { warmup: 1, reps: 5, maxMs: 120_000, maxTokens: 32 },
};

export interface BenchOptions {
  quick: boolean;
  /** Benchmark this model directory only, instead of building tiny (+ small). */
  modelDir?: string;
  budget?: BenchBudget;
  pipeline?: PipelineBenchFn | null;
  api?: ApiBenchFn | null;
  log?: (line: string) => void;
  /** Why a provider is absent (shown under notMeasured); defaults to a generic sentence. */
  absentReason?: { pipeline?: string; api?: string };
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const errMsg = (e: unknown) => (e instanceof Error ? e.message : String(e));

export async function runBench(opts: BenchOptions): Promise<BenchReport> {
  const started = new Date();
  const t0 = performance.now();
  const log = opts.log ?? (() => {});
  const budget = opts.budget ?? (opts.quick ? QUICK_BUDGET : FULL_BUDGET);
  const notMeasured: Record<string, string> = {};
  const measurements: Measurement[] = [];
  const rssAfter: Record<string, number> = {};
  const modelDirs: Record<string, string> = {};
  let model: ModelFigures | null = null;
  const describes: Record<string, DescribeFigures> = {};
  const pipelineConfigs: Record<string, PipelineConfigFigures> = {};
  let batchThroughput: BatchThroughputFigures | null = null;
  let realSize = false;
  if (opts.modelDir) {
    const variant = (await readManifest(opts.modelDir)).variant;
    modelDirs[variant] = opts.modelDir;
    realSize = REAL_SIZES.includes(variant);
    try {
      model = await runModelBench({ modelDir: opts.modelDir, log });
      if (realSize) {
        const g = model.generate;
        pipelineConfigs[variant] = {
          variant,
          size: g.size,
          steps: g.steps,
          stageMs: g.stageMs,
          totalMs: g.totalMs,
          jsOverheadShare: g.jsOverheadShare,
          sessionRunsPerImage: g.sessionRunsPerImage,
          details: { modelId: model.modelId, count: 1, repetitions: 1, peakRssMb: g.peakRssMb },
        };
        describes[variant] = model.describe.figures;
      }
    } catch (e) {
      notMeasured.model = `the model benchmark failed: ${errMsg(e)}`;
    }
    rssAfter.model = peakRssMb();
  } else {
    // The same cached random-weight builds the pipeline benchmark uses (tiny = the demo model),
    // so one run builds each model at most once and later runs build nothing.
    for (const config of opts.quick ? [HARMON_TINY] : [HARMON_TINY, HARMON_SMALL]) {
      modelDirs[config.variant] = await ensureDemoModel({
        name: config.variant === 'tiny' ? undefined : `${config.variant}-bench`,
        config,
        onBuild: (d) => log(`building the random-weight ${config.variant} model into ${d}`),
      });
    }
  }
  if (!opts.modelDir) notMeasured.model = 'the model section needs --model DIR';
  const variants = Object.keys(modelDirs);
  const headline = variants.includes('small') ? 'small' : variants[0];
  // Real sizes: the model section above measured generate and describe in fresh processes.
  const inProcess = realSize ? [] : variants;
  const skipped = 'not run in the bench process at real size (it would hold the weights there); see model.*';

  const samplers: Record<string, SamplerFigures> = {};
  for (const v of variants.filter((x) => !inProcess.includes(x)))
    notMeasured[`pipeline.fusedVsPerStep.${v}`] = skipped;
  for (const v of inProcess) {
    log(`sampler: fused vs per-step (${v})…`);
    try {
      const r = await runSamplerBench({
        modelDir: modelDirs[v],
        label: v,
        tokens: budget.sampler.tokens,
        measure: budget.sampler,
      });
      measurements.push(r.fused, r.perStep);
      samplers[v] = {
        variant: v,
        tokens: r.tokens,
        cfg: r.cfg,
        fusedMedianMs: r.fused.median,
        perStepMedianMs: r.perStep.median,
        fusedMinMs: r.fused.min,
        perStepMinMs: r.perStep.min,
        speedup: r.speedup,
        speedupBestCase: r.perStep.min / r.fused.min,
        sessionRuns: r.sessionRuns,
        maxAbsDiff: r.maxAbsDiff,
        maxAbsOutput: r.maxAbsOutput,
        relativeDiff: r.relativeDiff,
        outputsEqual: r.outputsEqual,
      };
    } catch (e) {
      notMeasured[`pipeline.fusedVsPerStep.${v}`] = `the sampler benchmark failed: ${errMsg(e)}`;
    }
  }
  rssAfter.sampler = peakRssMb();
  const samplerHeadline = samplers.tiny ?? samplers[headline];
  if (!samplerHeadline)
    notMeasured['pipeline.fusedVsPerStepSpeedup'] =
      notMeasured[`pipeline.fusedVsPerStep.${headline}`] ?? 'no sampler result';

  for (const v of inProcess) {
    log(`describe: first token, prefill, decode (${v})…`);
    try {
      const {
        measurements: ms,
        load: _load,
        ...fig
      } = await runDescribeBench({
        modelDir: modelDirs[v],
        label: v,
        maxTokens: budget.describe.maxTokens,
        measure: budget.describe,
      });
      measurements.push(...ms);
      describes[v] = fig;
    } catch (e) {
      notMeasured[`describe.${v}`] = `the describe benchmark failed: ${errMsg(e)}`;
    }
  }
  rssAfter.describe = peakRssMb();
  const describeHeadline = describes[headline] ?? null;
  if (!describeHeadline)
    notMeasured['describe.tokensPerSecond'] = notMeasured[`describe.${headline}`] ?? 'no describe result';

  if (realSize) {
    // Filled from the model section above (or left to notMeasured.model if it failed).
  } else if (opts.pipeline) {
    log('pipeline: generate per stage…');
    try {
      const r = await opts.pipeline({ modelDirs, quick: opts.quick, log });
      for (const c of r.configs) pipelineConfigs[c.variant] = c;
      measurements.push(...(r.measurements ?? []));
      batchThroughput = r.batchThroughput ?? null;
    } catch (e) {
      notMeasured.pipeline = `the pipeline benchmark failed: ${errMsg(e)}`;
    }
    rssAfter.pipeline = peakRssMb();
  } else {
    notMeasured.pipeline =
      opts.absentReason?.pipeline ?? 'the generate pipeline benchmark is not available in this build';
  }
  const ph = pipelineConfigs[headline] ?? null;
  if (!ph) {
    const why = notMeasured.pipeline ?? `the pipeline benchmark returned no ${headline} config`;
    for (const k of ['jsOverheadShare', 'sessionRunsPerImage', 'stageMs']) notMeasured[`pipeline.${k}`] = why;
  }
  if (!batchThroughput)
    notMeasured['pipeline.batchThroughputRatio'] =
      notMeasured.pipeline ??
      (realSize || opts.quick || !modelDirs.small
        ? 'the batching figure is measured on the small config in a full run (harmon bench without --quick or --model)'
        : 'the pipeline benchmark reported no batching figure');
  if (!pipelineConfigs.small)
    notMeasured['pipeline.jsOverheadShareSmall'] = opts.quick
      ? 'the quick mode benchmarks the tiny model only; the target is stated for the small config (run the full bench)'
      : (notMeasured.pipeline ?? 'no small-config pipeline result');

  let api: ApiFigures = {
    enqueueP50Ms: null,
    enqueueP99Ms: null,
    queryP99Ms: null,
    throughput: null,
    overheadVsBareApollo: null,
    subscriberEventDelayP99Ms: null,
    enqueueVsFloorP50: null,
    enqueueP99Ms10Tenants: null,
    queryVsBareReadMean: null,
  };
  let apiWhy: string | null = null;
  if (opts.api) {
    log('api: enqueue and job query interleaved with their floors, 10 tenants, 1,000 subscribers…');
    try {
      const r = await opts.api({ quick: opts.quick, log });
      api = r.figures;
      measurements.push(...(r.measurements ?? []));
    } catch (e) {
      apiWhy = `the API benchmark failed: ${errMsg(e)}`;
    }
    rssAfter.api = peakRssMb();
  } else {
    apiWhy = opts.absentReason?.api ?? 'the API benchmark is not available in this build';
  }
  for (const k of API_FIGURE_KEYS) {
    if (api[k] === null || api[k] === undefined)
      notMeasured[`api.${k}`] = apiWhy ?? 'the API benchmark did not report it';
  }

  const machine = { ...machineInfo('cpu', started), loadAverage: os.loadavg() };
  const targets = checkTargets({
    jsOverheadShareSmall: pipelineConfigs.small?.jsOverheadShare ?? null,
    jsOverheadShareTiny: pipelineConfigs.tiny?.jsOverheadShare ?? null,
    sessionRunsPerImage: ph?.sessionRunsPerImage ?? null,
    steps: ph?.steps ?? null,
    fusedSpeedupTiny: samplers.tiny?.speedup ?? null,
    fusedSpeedupTinyBest: samplers.tiny?.speedupBestCase ?? null,
    fusedMinMsTiny: samplers.tiny?.fusedMinMs ?? null,
    perStepMinMsTiny: samplers.tiny?.perStepMinMs ?? null,
    enqueueP99Ms: api.enqueueP99Ms,
    enqueueRate: num(api.details?.enqueueRate),
    overheadVsBareApollo: api.overheadVsBareApollo,
    subscriberEventDelayP99Ms: api.subscriberEventDelayP99Ms,
    enqueueVsFloorP50: api.enqueueVsFloorP50,
    enqueueP50Ms: api.enqueueP50Ms,
    enqueueFloorP50Ms: num(api.details?.enqueueFloorP50Ms),
    queryVsBareReadMean: api.queryVsBareReadMean,
    queryMeanMs: num(api.details?.queryMeanMs),
    bareReadMeanMs: num(api.details?.bareReadMeanMs),
    cpus: machine.availableParallelism,
    loadAverage1m: machine.loadAverage[0],
    notMeasured: {
      ...notMeasured,
      ...(samplers.tiny
        ? {}
        : {
            'pipeline.fusedVsPerStepSpeedup':
              notMeasured['pipeline.fusedVsPerStepSpeedup'] ??
              'the tiny model was not benchmarked (--model names another variant)',
          }),
    },
  });

  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    mode: opts.quick ? 'quick' : 'full',
    startedAt: started.toISOString(),
    durationMs: performance.now() - t0,
    machine,
    pipeline: {
      headlineVariant: ph ? headline : null,
      jsOverheadShare: ph?.jsOverheadShare ?? null,
      sessionRunsPerImage: ph?.sessionRunsPerImage ?? null,
      fusedVsPerStepSpeedup: samplerHeadline?.speedup ?? null,
      stageMs: ph?.stageMs ?? null,
      batchThroughputRatio: batchThroughput?.ratio ?? null,
      batchThroughput,
      configs: pipelineConfigs,
      fusedVsPerStep: samplers,
    },
    describe: {
      headlineVariant: describeHeadline ? headline : null,
      tokensPerSecond: describeHeadline?.tokensPerSecond ?? null,
      timeToFirstTokenMs: describeHeadline?.timeToFirstTokenMs ?? null,
      prefillMs: describeHeadline?.prefillMs ?? null,
      decodeMsPerToken: describeHeadline?.decodeMsPerToken ?? null,
      configs: describes,
    },
    api,
    model,
    memory: { peakRssMb: peakRssMb(), peakRssMbAfter: rssAfter },
    targets,
    notMeasured,
    measurements,
    chart: null,
  };
}
