/**
 * The JSON document `harmon bench --json FILE` writes, and its printed summary. One shape for
 * quick and full runs; a figure that was not measured is `null` with the reason under
 * `notMeasured[key]` — never a placeholder number.
 */
import type { BatchThroughputFigures } from './batch-bench.ts';
import type { StageRow } from './chart.ts';
import type { Measurement } from './harness.ts';
import type { MachineInfo } from './machine.ts';
import type { TargetCheck } from './targets.ts';

export interface LoadFigures {
  totalMs: number;
  verifyMs: number;
  filesHashed: number;
  filesByMarker: number;
  msByGraph: Record<string, number>;
}

export interface ModelFigures {
  variant: string;
  modelId: string;
  dtype: string;
  /** Every file of the model directory (manifest and graphs; hash markers left out). */
  dirBytes: number;
  /** Every weight some graph uses, counted once, at the storage dtype. */
  weightBytes: number;
  dirToWeightRatio: number;
  /** The same weights in fp32: what a loaded session holds per copy. */
  weightBytesFp32: number;
  /** Weight bytes the serving sessions hold by the layout table (src/onnx/weight-budget.ts). */
  residentWeightBytes: number;
  generate: {
    size: number;
    steps: number;
    totalMs: number;
    stageMs: Record<string, number>;
    sessionRunsPerImage: number;
    jsOverheadShare: number;
    load: LoadFigures;
    peakRssMb: number;
    /** Peak RSS over the fp32 weight bytes counted once. */
    peakRssToWeightRatio: number;
  };
  describe: {
    maxTokens: number;
    timeToFirstTokenMs: number;
    prefillMs: number;
    tokensPerSecond: number;
    totalMs: number;
    stageMs: Record<string, number>;
    load: LoadFigures;
    peakRssMb: number;
    peakRssToWeightRatio: number;
    /** The report's describe figures for this model, for the describe section. */
    figures: DescribeFigures;
  };
}

export const REPORT_SCHEMA_VERSION = 1;

/** Figures of the generate pipeline for one model config (from the pipeline benchmark). */
export interface PipelineConfigFigures {
  variant: string;
  size: number | null;
  steps: number | null;
  /** Median milliseconds per stage of one generate request. */
  stageMs: Record<string, number>;
  totalMs: number | null;
  /** (request time − session run time) / request time. */
  jsOverheadShare: number | null;
  sessionRunsPerImage: number | null;
  /** Anything else the pipeline benchmark reports, kept verbatim. */
  details?: Record<string, unknown>;
}

export interface SamplerFigures {
  variant: string;
  tokens: number;
  cfg: boolean;
  fusedMedianMs: number;
  perStepMedianMs: number;
  fusedMinMs: number;
  perStepMinMs: number;
  speedup: number;
  /** Ratio of the fastest runs: what the graph saves with no machine noise. */
  speedupBestCase: number;
  sessionRuns: { fused: number; perStep: number };
  maxAbsDiff: number;
  maxAbsOutput: number;
  relativeDiff: number;
  outputsEqual: boolean;
}

export interface DescribeFigures {
  variant: string;
  imageSize: number;
  promptTokens: number;
  tokensGenerated: number;
  timeToFirstTokenMs: number;
  prefillMs: number;
  /** Prompt tokens per second of the prefill run. */
  prefillTokensPerSecond: number;
  decodeMsPerToken: number;
  tokensPerSecond: number;
  totalMs: number;
  sessionRunsPerRequest: number;
  /** Median milliseconds per describe stage (RequestTimer's stages), for the breakdown chart. */
  stageMs: Record<string, number>;
}

/**
 * The API benchmark's figures. ApiFigures is built from this list, so the report's null check
 * (run-bench.ts) and the API bench test walk every figure there is.
 */
export const API_FIGURE_KEYS = [
  'enqueueP50Ms',
  'enqueueP99Ms',
  'queryP99Ms',
  'throughput',
  'overheadVsBareApollo',
  'subscriberEventDelayP99Ms',
  'enqueueVsFloorP50',
  'enqueueP99Ms10Tenants',
  'queryVsBareReadMean',
] as const;

export type ApiFigures = { [K in (typeof API_FIGURE_KEYS)[number]]: number | null } & {
  /** Anything else the API benchmark reports, kept verbatim. */
  details?: Record<string, unknown>;
};

export interface BenchReport {
  schemaVersion: number;
  mode: 'quick' | 'full';
  startedAt: string;
  durationMs: number;
  machine: MachineInfo & { loadAverage: number[] };
  pipeline: {
    /** Config the headline figures below come from (small in a full run, tiny in a quick one). */
    headlineVariant: string | null;
    jsOverheadShare: number | null;
    sessionRunsPerImage: number | null;
    fusedVsPerStepSpeedup: number | null;
    stageMs: Record<string, number> | null;
    /**
     * Issue #14: images/s of 8 concurrent single-image jobs as one batch ÷ one at a time
     * (small config, 256², 4 steps, interleaved); details per batch size under batchThroughput.
     */
    batchThroughputRatio: number | null;
    batchThroughput: BatchThroughputFigures | null;
    configs: Record<string, PipelineConfigFigures>;
    fusedVsPerStep: Record<string, SamplerFigures>;
  };
  describe: {
    headlineVariant: string | null;
    tokensPerSecond: number | null;
    timeToFirstTokenMs: number | null;
    prefillMs: number | null;
    decodeMsPerToken: number | null;
    configs: Record<string, DescribeFigures>;
  };
  api: ApiFigures;
  /** `--model DIR` only: bytes, load per graph and peak RSS of one generate and one describe. */
  model: ModelFigures | null;
  memory: { peakRssMb: number; peakRssMbAfter: Record<string, number> };
  targets: TargetCheck[];
  notMeasured: Record<string, string>;
  measurements: Measurement[];
  /** Where the bench wrote its chart, if it did. */
  chart: string | null;
}

/**
 * The keys issues #7, #12 and #14 name in their acceptance; all must be present (a value or null +
 * notMeasured).
 */
export const REQUIRED_KEYS = [
  'pipeline.jsOverheadShare',
  'pipeline.sessionRunsPerImage',
  'pipeline.fusedVsPerStepSpeedup',
  'pipeline.stageMs',
  'pipeline.batchThroughputRatio',
  'describe.tokensPerSecond',
  'api.enqueueP99Ms',
  'api.overheadVsBareApollo',
  'api.subscriberEventDelayP99Ms',
  'api.enqueueVsFloorP50',
  'api.enqueueP99Ms10Tenants',
  'api.queryVsBareReadMean',
] as const;

export function getPath(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const k of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || !(k in cur)) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

/** Required keys that are absent, or null without a reason in notMeasured. */
export function missingKeys(report: BenchReport): string[] {
  return REQUIRED_KEYS.filter((k) => {
    const v = getPath(report, k);
    return v === undefined || (v === null && !report.notMeasured[k]);
  });
}

const show = (v: number | null | undefined, digits = 2) =>
  v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(digits);

/** Human summary printed after the measurement table. */
export function formatSummary(r: BenchReport): string {
  const lines: string[] = [];
  const nm = (k: string, v: string) => (r.notMeasured[k] ? `not measured: ${r.notMeasured[k]}` : v);
  lines.push(
    `machine: ${r.machine.cpus}× ${r.machine.cpuModel}, ${r.machine.memoryGiB} GiB, node ${r.machine.nodeVersion}, onnxruntime-node ${r.machine.onnxruntimeVersion} (${r.machine.executionProvider}), code ${r.machine.revision ?? 'unknown'}, load ${r.machine.loadAverage.map((v) => v.toFixed(1)).join('/')}`,
  );
  lines.push(
    `pipeline (${r.pipeline.headlineVariant ?? '—'}): JS share ${nm('pipeline.jsOverheadShare', show(r.pipeline.jsOverheadShare, 3))}, session runs/image ${nm('pipeline.sessionRunsPerImage', show(r.pipeline.sessionRunsPerImage, 0))}`,
  );
  const bt = r.pipeline.batchThroughput;
  lines.push(
    `cross-job batching: ${nm(
      'pipeline.batchThroughputRatio',
      bt
        ? `${bt.variant} ${bt.size}², ${bt.steps} steps, batched ÷ one at a time (images/s): ${Object.values(
            bt.bySize,
          )
            .map((b) => `${b.jobs} jobs ${show(b.ratio)}×`)
            .join(
              ', ',
            )}; ${Math.max(...Object.values(bt.bySize).map((b) => b.jobs))} jobs without the run bound ${show(bt.unbounded.ratio)}×`
        : '—',
    )}`,
  );
  for (const s of Object.values(r.pipeline.fusedVsPerStep)) {
    lines.push(
      `sampler (${s.variant}, ${s.tokens} tokens, CFG): fused ${show(s.fusedMedianMs)} ms vs per-step ${show(s.perStepMedianMs)} ms → ${show(s.speedup)}× (best case ${show(s.speedupBestCase)}×); outputs ${s.outputsEqual ? 'equal' : 'DIFFER'} (max-abs ${s.maxAbsDiff.toExponential(2)} on max|x0| ${s.maxAbsOutput.toExponential(2)})`,
    );
  }
  for (const d of Object.values(r.describe.configs)) {
    lines.push(
      `describe (${d.variant}, ${d.imageSize}px, ${d.promptTokens} prompt tokens): first token ${show(d.timeToFirstTokenMs, 1)} ms, prefill ${show(d.prefillMs, 1)} ms, decode ${show(d.tokensPerSecond, 1)} tok/s`,
    );
  }
  lines.push(
    `api: enqueue p99 ${nm('api.enqueueP99Ms', `${show(r.api.enqueueP99Ms, 1)} ms`)}; overhead vs bare Apollo ${nm('api.overheadVsBareApollo', `${show(r.api.overheadVsBareApollo)}×`)}; event delay p99 ${nm('api.subscriberEventDelayP99Ms', `${show(r.api.subscriberEventDelayP99Ms, 1)} ms`)}`,
  );
  lines.push(
    `api vs floors (interleaved): enqueue p50 ${nm('api.enqueueVsFloorP50', `${show(r.api.enqueueVsFloorP50)}× its floor`)}; enqueue p99 with 10 tenants ${nm('api.enqueueP99Ms10Tenants', `${show(r.api.enqueueP99Ms10Tenants, 1)} ms`)}; job query mean ${nm('api.queryVsBareReadMean', `${show(r.api.queryVsBareReadMean)}× a bare one-row read`)}`,
  );
  if (r.model) lines.push(...formatModel(r.model));
  lines.push(`peak RSS ${r.memory.peakRssMb.toFixed(0)} MiB`);
  lines.push('targets:');
  for (const t of r.targets) lines.push(`  [${t.status}] ${t.target}: ${t.why}`);
  return lines.join('\n');
}

function formatModel(m: ModelFigures): string[] {
  const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;
  const load = (l: ModelFigures['generate']['load']) =>
    `load ${show(l.totalMs / 1000, 1)} s (files ${show(l.verifyMs / 1000, 1)} s: ${l.filesHashed} hashed, ${l.filesByMarker} by marker; sessions ${Object.entries(
      l.msByGraph,
    )
      .map(([g, ms]) => `${g} ${show(ms / 1000, 1)}`)
      .join(', ')} s)`;
  const g = m.generate;
  const d = m.describe;
  return [
    `model ${m.modelId} (${m.dtype}): directory ${gb(m.dirBytes)} for ${gb(m.weightBytes)} of weights counted once (${show(m.dirToWeightRatio)}×); fp32 ${gb(m.weightBytesFp32)}, held by the serving sessions ${gb(m.residentWeightBytes)}`,
    `  generate ${g.size}² × ${g.steps} steps: ${show(g.totalMs / 1000, 1)} s, peak RSS ${show(g.peakRssMb / 1024, 2)} GiB (${show(g.peakRssToWeightRatio)}× fp32 weights); ${load(g.load)}`,
    `  describe ${d.maxTokens} tokens: first token ${show(d.timeToFirstTokenMs / 1000, 1)} s, ${show(d.totalMs / 1000, 1)} s, peak RSS ${show(d.peakRssMb / 1024, 2)} GiB (${show(d.peakRssToWeightRatio)}×); ${load(d.load)}`,
  ];
}

/** One chart bar per benchmarked generate config, then one per describe config. */
export function chartRows(r: BenchReport): StageRow[] {
  const rows: StageRow[] = [];
  for (const c of Object.values(r.pipeline.configs)) {
    const what = [c.size ? `${c.size}px` : null, c.steps ? `${c.steps} steps` : null]
      .filter(Boolean)
      .join(', ');
    rows.push({
      label: `generate ${c.variant}${what ? ` (${what})` : ''}`,
      stageMs: c.stageMs,
      totalMs: c.totalMs ?? undefined,
    });
  }
  for (const d of Object.values(r.describe.configs)) {
    rows.push({
      label: `describe ${d.variant} (${d.tokensGenerated} tok)`,
      stageMs: d.stageMs,
      totalMs: d.totalMs,
    });
  }
  return rows;
}
