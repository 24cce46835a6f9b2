/**
 * Shared setup of the diffusion_sampler.onnx tests (random weights, the scan/unrolled layouts,
 * well-conditioned weights). One graph serves both cases: guided inputs carry 2n condition rows
 * (row pairing from samplerRows), unguided ones n. Each file fixes a config, weights, n, a CFG scale, a temperature and
 * an input amplitude; this module draws the inputs, feeds a sampler graph and runs the float64
 * reference from them the same way for all three, so they cannot drift apart.
 */
import assert from 'node:assert/strict';
import { samplerRows } from '../../src/harmon/mar-batch.ts';
import type { HarmonConfig } from '../../src/model/config.ts';
import type { WeightSource } from '../../src/onnx/weights/types.ts';
import { type Feed, f32, randomArray, runModel } from '../helpers/ort.ts';
import { diffusionSampleReference, type SamplerVariant } from '../reference/diffusion.ts';

export interface SamplerCase {
  cfg: HarmonConfig;
  weights: WeightSource;
  /** Images (conditional rows) per run. */
  n: number;
  scale: number;
  temperature: number;
  /** x_T and ξ are drawn in [−amplitude, amplitude). */
  amplitude: number;
}

export interface SamplerTestInputs {
  /** 2n with CFG, n without. */
  rows: number;
  /** [rows, D] */
  c: Float32Array;
  /** [n, 16] */
  xT: Float32Array;
  /** [S, rows, 16]: the reference state has `rows` rows and draws ξ for every one of them. */
  noiseAll: Float32Array;
  /** [S, n, 16]: the graph only gets the conditional rows' ξ (the first n of each step). */
  noise: Float32Array;
}

export interface SamplerOverrides {
  noise?: Float32Array;
  scale?: number;
  temperature?: number;
}

export interface ReferenceOptions {
  variant?: SamplerVariant;
  /** Other weights for the reference only (e.g. fp16-rounded). */
  weights?: WeightSource;
  noiseAll?: Float32Array;
  temperature?: number;
}

export interface SamplerFixture {
  inputs(useCfg: boolean, seed: number): SamplerTestInputs;
  feeds(inp: SamplerTestInputs, over?: SamplerOverrides): Record<string, Feed>;
  /** n = 0 feeds: the sampler must run and return [0, 16]. */
  emptyFeeds(): Record<string, Feed>;
  /** Runs a sampler graph on `inp`, checks x_0 is [n, 16] and returns it. */
  run(bytes: Uint8Array, inp: SamplerTestInputs, over?: SamplerOverrides): Promise<Float32Array>;
  /** The reference loop's conditional half [n, 16] (the whole state without CFG). */
  reference(useCfg: boolean, inp: SamplerTestInputs, opts?: ReferenceOptions): Float64Array;
}

export const peak = (a: ArrayLike<number>) => Math.max(...Array.from(a, Math.abs));

export function diffusionSamplerFixture(k: SamplerCase): SamplerFixture {
  const { cfg, n } = k;
  const D = cfg.mar.width;
  const S = cfg.diffusion.samplingSteps;
  const feeds = (inp: SamplerTestInputs, over: SamplerOverrides = {}) => {
    const rows = samplerRows(n, inp.rows === 2 * n); // guided iff the c rows carry the unconditional half
    return {
      c: f32([inp.rows, D], inp.c),
      x_T: f32([n, 16], inp.xT),
      noise: f32([S, n, 16], over.noise ?? inp.noise),
      row_state: { dtype: 'int64' as const, dims: [inp.rows], data: rows.rowState },
      uncond_row: { dtype: 'int64' as const, dims: [n], data: rows.uncondRow },
      cfg_scale: f32([n], new Float32Array(n).fill(over.scale ?? k.scale)),
      temperature: f32([n], new Float32Array(n).fill(over.temperature ?? k.temperature)),
    };
  };
  return {
    inputs(useCfg, seed) {
      const rows = useCfg ? 2 * n : n;
      const c = randomArray(rows * D, seed, 1);
      const xT = randomArray(n * 16, seed + 1, k.amplitude);
      const noiseAll = randomArray(S * rows * 16, seed + 2, k.amplitude);
      const noise = new Float32Array(S * n * 16);
      for (let i = 0; i < S; i++)
        noise.set(noiseAll.subarray(i * rows * 16, i * rows * 16 + n * 16), i * n * 16);
      return { rows, c, xT, noiseAll, noise };
    },
    feeds,
    emptyFeeds: () => ({
      c: f32([0, D], []),
      x_T: f32([0, 16], []),
      noise: f32([S, 0, 16], []),
      row_state: { dtype: 'int64' as const, dims: [0], data: new BigInt64Array(0) },
      uncond_row: { dtype: 'int64' as const, dims: [0], data: new BigInt64Array(0) },
      cfg_scale: f32([0], []),
      temperature: f32([0], []),
    }),
    async run(bytes, inp, over = {}) {
      const out = await runModel(bytes, feeds(inp, over));
      assert.deepEqual([...out.x_0.dims], [n, 16]);
      return out.x_0.data as Float32Array;
    },
    reference(useCfg, inp, opts = {}) {
      const x = diffusionSampleReference(
        cfg,
        opts.weights ?? k.weights,
        {
          n,
          c: inp.c,
          xT: inp.xT,
          noise: opts.noiseAll ?? inp.noiseAll,
          cfg: useCfg,
          cfgScale: k.scale,
          temperature: opts.temperature ?? k.temperature,
        },
        opts.variant,
      );
      return x.subarray(0, n * 16);
    },
  };
}
