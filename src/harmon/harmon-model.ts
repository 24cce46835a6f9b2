/**
 * A loaded Harmon model: the ONNX sessions (src/runtime), the tokenizer, and the learned 16×16
 * position tables read once from pos_tables.onnx and interpolated per resolution on demand
 * (spec §2.10; cached, since every step of every request at one size reuses them).
 * generate.ts and describe.ts take one of these; nothing here knows about threads.
 */
import type { HarmonConfig, LlmConfig } from '../model/config.ts';
import type { Manifest } from '../model/manifest.ts';
import { ModelRuntime, type RuntimeOptions } from '../runtime/sessions.ts';
import type { HostTensor } from '../runtime/tensors.ts';
import { AppError } from '../shared/errors.ts';
import type { RunMetadata, SessionCounts } from './events.ts';
import { resizeGrid } from './pos-embed.ts';
import { getTokenizer, type QwenTokenizer } from './tokenizer.ts';

/** Interpolated grid rows (no buffer rows) for one h×w token grid, each [h·w, D]. */
export interface GridTables {
  enc: Float32Array;
  dec: Float32Array;
  diff: Float32Array;
}

export class HarmonModel {
  private readonly grids = new Map<string, GridTables>();

  private constructor(
    readonly runtime: ModelRuntime,
    readonly tokenizer: QwenTokenizer,
    private readonly native: GridTables,
  ) {}

  /** Opens every graph of the directory; each weight is held by exactly one session (manifest.ts). */
  static async open(dir: string, opts: RuntimeOptions = {}): Promise<HarmonModel> {
    const runtime = await ModelRuntime.open(dir, opts);
    try {
      const out = await runtime.run('pos_tables', {});
      const f32 = (name: string) => outF32(out, name, 'pos_tables').data;
      const native = { enc: f32('enc_pos_grid16'), dec: f32('dec_pos_grid16'), diff: f32('diff_pos_grid16') };
      return new HarmonModel(runtime, getTokenizer(), native);
    } catch (e) {
      await runtime.close();
      throw e;
    }
  }

  get manifest(): Manifest {
    return this.runtime.manifest;
  }

  get config(): HarmonConfig {
    return this.runtime.manifest.config;
  }

  /** Pos tables for an h×w grid; the native 16×16 grid is returned as stored. */
  gridTables(h: number, w: number): GridTables {
    const key = `${h}x${w}`;
    let t = this.grids.get(key);
    if (!t) {
      const { width: D, nativeGrid: n } = this.config.mar;
      const r = (src: Float32Array) => resizeGrid(src, n, n, D, h, w); // [16,16,D] -> [h,w,D]
      t = { enc: r(this.native.enc), dec: r(this.native.dec), diff: r(this.native.diff) };
      this.grids.set(key, t);
    }
    return t;
  }

  /** Which model produced a result, as every RunMetadata names it. */
  identity(): Pick<RunMetadata, 'modelId' | 'variant' | 'demo'> {
    const m = this.manifest;
    return { modelId: m.modelId, variant: m.variant, demo: m.demo };
  }

  /** Snapshot of the cumulative session counters, to diff per request. */
  snapshot(): SessionCounts {
    const s = this.runtime.stats;
    return { runs: s.runs, runsByGraph: { ...s.runsByGraph }, msByGraph: { ...s.msByGraph } };
  }

  /** Session runs and time since `before`. */
  since(before: SessionCounts): SessionCounts {
    const now = this.runtime.stats;
    const runsByGraph: Record<string, number> = {};
    const msByGraph: Record<string, number> = {};
    for (const g of Object.keys(now.runsByGraph)) {
      const runs = now.runsByGraph[g] - (before.runsByGraph[g] ?? 0);
      if (runs > 0) {
        runsByGraph[g] = runs;
        msByGraph[g] = now.msByGraph[g] - (before.msByGraph[g] ?? 0);
      }
    }
    return { runs: now.runs - before.runs, runsByGraph, msByGraph };
  }

  async close(): Promise<void> {
    await this.runtime.close();
  }
}

/** Wall-clock per stage plus the session counters of one request. */
export class RequestTimer {
  readonly stageMs: Record<string, number> = {};
  private readonly t0 = performance.now();
  private readonly before: SessionCounts;

  constructor(private readonly model: HarmonModel) {
    this.before = model.snapshot();
  }

  async time<T>(stage: string, fn: () => Promise<T> | T): Promise<T> {
    const t = performance.now();
    try {
      return await fn();
    } finally {
      this.stageMs[stage] = (this.stageMs[stage] ?? 0) + (performance.now() - t);
    }
  }

  finish(): RunMetadata {
    const sessions = this.model.since(this.before);
    return {
      ...this.model.identity(),
      stageMs: this.stageMs,
      totalMs: performance.now() - this.t0,
      sessions,
      sessionMs: Object.values(sessions.msByGraph).reduce((a, b) => a + b, 0),
    };
  }
}

/** Float32 output of a session run, with a clear error if a graph lacks it. */
export function outF32(
  out: Record<string, HostTensor>,
  name: string,
  graph: string,
): HostTensor & { data: Float32Array } {
  const t = out[name];
  if (!t || !(t.data instanceof Float32Array)) {
    throw new AppError('MODEL_INVALID', `graph ${graph} returned no float32 output ${name}`);
  }
  return t as HostTensor & { data: Float32Array };
}

/** Empty `past_key_values.{l}.{key,value}` feeds [rows, kvHeads, 0, headDim]: an lm prefill run. */
export function emptyPast(llm: LlmConfig, rows: number): Record<string, HostTensor> {
  const past: Record<string, HostTensor> = {};
  for (let l = 0; l < llm.layers; l++) {
    for (const kv of ['key', 'value'])
      past[`past_key_values.${l}.${kv}`] = {
        dtype: 'float32',
        dims: [rows, llm.kvHeads, 0, llm.headDim],
        data: new Float32Array(0),
      };
  }
  return past;
}

/** The lm's `present.{l}.*` outputs as the `past_key_values.{l}.*` feeds of the next run. */
export function presentAsPast(out: Record<string, HostTensor>, layers: number): Record<string, HostTensor> {
  const past: Record<string, HostTensor> = {};
  for (let l = 0; l < layers; l++) {
    for (const kv of ['key', 'value'])
      past[`past_key_values.${l}.${kv}`] = outF32(out, `present.${l}.${kv}`, 'lm');
  }
  return past;
}

/** Names of the lm's `present.{l}.{key,value}` outputs, to fetch only the cache from a run. */
export function presentNames(layers: number): string[] {
  return Array.from({ length: layers }, (_, l) => [`present.${l}.key`, `present.${l}.value`]).flat();
}

export function throwIfCanceled(signal: { readonly aborted: boolean } | undefined, what: string): void {
  if (signal?.aborted) throw new AppError('CANCELED', `The ${what} was canceled.`);
}
