/**
 * Independent float64 reference for the diffusion MLP (spec §1.6) and the reverse-diffusion loop
 * in the reference's ORIGINAL formulation (§3.5–§3.7): a duplicated 2n-row state with CFG, both
 * halves starting from the same x_T, the guided ε applied to both halves and each row keeping its
 * own variance value v. Written from the spec with plain loops; test-only.
 *
 * `variant` switches in the wrong conventions the tests must be able to tell apart.
 */

import type { HarmonConfig } from '../../src/model/config.ts';
import { diffusionSchedule } from '../../src/onnx/builders/diffusion-schedule.ts';
import { float32ToFloat16Bits } from '../../src/onnx/weights/dtype.ts';
import { MemoryWeights, type WeightSource } from '../../src/onnx/weights/types.ts';
import { randomArray } from '../helpers/ort.ts';

export interface MlpVariant {
  /** Correct: 'cos-sin'. */
  embedOrder?: 'cos-sin' | 'sin-cos';
  /** Correct: 'shift-scale-gate' (the final layer uses the first two names in the same order). */
  adaOrder?: 'shift-scale-gate' | 'scale-shift-gate';
}

export interface SamplerVariant extends MlpVariant {
  /** Correct: true (index 0 borrows log σ̃²_1; log σ̃²_0 = −∞). */
  clipMinLog?: boolean;
  /** Correct: false. */
  noiseAtZero?: boolean;
}

type Lin = { w: Float64Array; b: Float64Array; inF: number; outF: number };

interface RefWeights {
  W: number;
  D: number;
  eps: number;
  te0: Lin;
  te2: Lin;
  cond: Lin;
  inProj: Lin;
  blocks: { lnW: Float64Array; lnB: Float64Array; mlp0: Lin; mlp2: Lin; ada: Lin }[];
  finalAda: Lin;
  finalLin: Lin;
}

const P = 'mar.diffloss.net.';

function read(weights: WeightSource, key: string, shape: number[]): Float64Array {
  const e = weights.get(key);
  if (!e) throw new Error(`reference: missing ${key}`);
  if (e.shape.join(',') !== shape.join(','))
    throw new Error(`reference: ${key} has shape [${e.shape}], want [${shape}]`);
  return Float64Array.from(e.read());
}

function lin(weights: WeightSource, key: string, inF: number, outF: number): Lin {
  return {
    w: read(weights, `${P}${key}.weight`, [outF, inF]),
    b: read(weights, `${P}${key}.bias`, [outF]),
    inF,
    outF,
  };
}

export function loadDiffusionReference(config: HarmonConfig, weights: WeightSource): RefWeights {
  const W = config.diffusion.width;
  const D = config.mar.width;
  return {
    W,
    D,
    eps: config.diffusion.lnEps,
    te0: lin(weights, 'time_embed.mlp.0', 256, W),
    te2: lin(weights, 'time_embed.mlp.2', W, W),
    cond: lin(weights, 'cond_embed', D, W),
    inProj: lin(weights, 'input_proj', 16, W),
    blocks: Array.from({ length: config.diffusion.depth }, (_, j) => ({
      lnW: read(weights, `${P}res_blocks.${j}.in_ln.weight`, [W]),
      lnB: read(weights, `${P}res_blocks.${j}.in_ln.bias`, [W]),
      mlp0: lin(weights, `res_blocks.${j}.mlp.0`, W, W),
      mlp2: lin(weights, `res_blocks.${j}.mlp.2`, W, W),
      ada: lin(weights, `res_blocks.${j}.adaLN_modulation.1`, W, 3 * W),
    })),
    finalAda: lin(weights, 'final_layer.adaLN_modulation.1', W, 2 * W),
    finalLin: lin(weights, 'final_layer.linear', W, 32),
  };
}

/** PyTorch Linear on one row: y[o] = b[o] + Σ_i x[i]·w[o,i]. */
function applyLin(l: Lin, x: ArrayLike<number>): Float64Array {
  const y = new Float64Array(l.outF);
  for (let o = 0; o < l.outF; o++) {
    let s = l.b[o];
    for (let i = 0; i < l.inF; i++) s += x[i] * l.w[o * l.inF + i];
    y[o] = s;
  }
  return y;
}

const siluArr = (x: Float64Array) => x.map((v) => v / (1 + Math.exp(-v)));

function layerNormRow(x: Float64Array, eps: number, w?: Float64Array, b?: Float64Array): Float64Array {
  const n = x.length;
  const mean = x.reduce((a, v) => a + v, 0) / n;
  const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / n;
  const inv = 1 / Math.sqrt(variance + eps);
  return x.map((v, i) => (v - mean) * inv * (w ? w[i] : 1) + (b ? b[i] : 0));
}

/** One row of the network: x [16], t (original scale), c [D] -> [32]. */
function mlpRow(
  rw: RefWeights,
  x: ArrayLike<number>,
  t: number,
  c: ArrayLike<number>,
  v: MlpVariant,
): Float64Array {
  const { W } = rw;
  // Frequencies are built in fp32 by the reference (torch.arange float32): round them likewise.
  const e = new Float64Array(256);
  for (let k = 0; k < 128; k++) {
    const f = Math.fround(Math.exp((-Math.log(10000) * k) / 128));
    const [first, second] = v.embedOrder === 'sin-cos' ? [Math.sin, Math.cos] : [Math.cos, Math.sin];
    e[k] = first(t * f);
    e[128 + k] = second(t * f);
  }
  const temb = applyLin(rw.te2, siluArr(applyLin(rw.te0, e)));
  const cond = applyLin(rw.cond, c);
  const ys = siluArr(temb.map((a, i) => a + cond[i]));
  let h = applyLin(rw.inProj, x);
  const part = (m: Float64Array, k: number) => m.subarray(k * W, (k + 1) * W);
  for (const blk of rw.blocks) {
    const m = applyLin(blk.ada, ys);
    const [shift, scale, gate] =
      v.adaOrder === 'scale-shift-gate'
        ? [part(m, 1), part(m, 0), part(m, 2)]
        : [part(m, 0), part(m, 1), part(m, 2)];
    const n = layerNormRow(h, rw.eps, blk.lnW, blk.lnB).map((a, i) => a * (1 + scale[i]) + shift[i]);
    const u = applyLin(blk.mlp2, siluArr(applyLin(blk.mlp0, n)));
    h = h.map((a, i) => a + gate[i] * u[i]);
  }
  const m = applyLin(rw.finalAda, ys);
  const [shift, scale] =
    v.adaOrder === 'scale-shift-gate' ? [part(m, 1), part(m, 0)] : [part(m, 0), part(m, 1)];
  const n = layerNormRow(h, rw.eps).map((a, i) => a * (1 + scale[i]) + shift[i]);
  return applyLin(rw.finalLin, n);
}

export interface MlpInputs {
  x: ArrayLike<number>; // [R,16]
  t: ArrayLike<number>; // [R]
  c: ArrayLike<number>; // [R,D]
}

/** The network on R rows: returns [R,32] (ε̂ ‖ v). */
export function diffusionMlpReference(
  config: HarmonConfig,
  weights: WeightSource | RefWeights,
  inputs: MlpInputs,
  variant: MlpVariant = {},
): Float64Array {
  const rw = 'names' in weights ? loadDiffusionReference(config, weights) : weights;
  const R = inputs.t.length;
  const out = new Float64Array(R * 32);
  for (let r = 0; r < R; r++) {
    const x = Array.from({ length: 16 }, (_, i) => inputs.x[r * 16 + i]);
    const c = Array.from({ length: rw.D }, (_, i) => inputs.c[r * rw.D + i]);
    out.set(mlpRow(rw, x, inputs.t[r], c, variant), r * 32);
  }
  return out;
}

export interface SamplerInputs {
  n: number;
  /** [2n, D] with CFG (conditional rows first), [n, D] without. */
  c: ArrayLike<number>;
  /** [n,16]; duplicated to both halves with CFG. */
  xT: ArrayLike<number>;
  /** [S, rows, 16] with rows = 2n under CFG (the halves get different ξ), n without. */
  noise: ArrayLike<number>;
  cfg: boolean;
  cfgScale: number;
  temperature: number;
}

/**
 * The reference loop of §3.7, original formulation. Returns the whole final state:
 * [2n,16] with CFG (the caller keeps rows 0…n−1), [n,16] without.
 */
export function diffusionSampleReference(
  config: HarmonConfig,
  weights: WeightSource,
  inp: SamplerInputs,
  variant: SamplerVariant = {},
): Float64Array {
  const rw = loadDiffusionReference(config, weights);
  const s = diffusionSchedule(config.diffusion);
  const S = config.diffusion.samplingSteps;
  const { n } = inp;
  const rows = inp.cfg ? 2 * n : n;
  const x = new Float64Array(rows * 16);
  for (let r = 0; r < rows; r++) for (let k = 0; k < 16; k++) x[r * 16 + k] = inp.xT[(r % n) * 16 + k];
  const minLog = s.minLog.slice();
  if (variant.clipMinLog === false) minLog[0] = Math.log(s.posteriorVariance[0]); // −∞
  for (let i = S - 1; i >= 0; i--) {
    // §3.5: the network only ever sees the conditional half, duplicated.
    const xin = new Float64Array(rows * 16);
    for (let r = 0; r < rows; r++) for (let k = 0; k < 16; k++) xin[r * 16 + k] = x[(r % n) * 16 + k];
    const out = diffusionMlpReference(
      config,
      rw,
      { x: xin, t: new Array(rows).fill(s.timesteps[i]), c: inp.c },
      variant,
    );
    const nz = i > 0 || variant.noiseAtZero ? 1 : 0;
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < 16; k++) {
        let eps = out[r * 32 + k];
        if (inp.cfg) {
          const ec = out[(r % n) * 32 + k];
          const eu = out[((r % n) + n) * 32 + k];
          eps = eu + inp.cfgScale * (ec - eu); // both halves get the guided ε
        }
        const v = out[r * 32 + 16 + k]; // variance is NOT guided: each row keeps its own
        const xt = x[r * 16 + k];
        const x0 = s.sra[i] * xt - s.srm1[i] * eps;
        const mean = s.c1[i] * x0 + s.c2[i] * xt;
        const frac = (v + 1) / 2;
        const logVar = frac * s.maxLog[i] + (1 - frac) * minLog[i];
        // Literal nonzero_mask product, as the reference: 0·∞ would surface as NaN.
        const xi = inp.noise[(i * rows + r) * 16 + k];
        x[r * 16 + k] = mean + nz * Math.exp(0.5 * logVar) * xi * inp.temperature;
      }
    }
  }
  return x;
}

/**
 * §3.8's cheaper formulation in float64: only the conditional state, the network on [x ‖ x].
 * `noise` is [S, n, 16]. Rows are independent in the network, so this must equal the original
 * formulation's conditional half exactly.
 */
export function diffusionSampleCheaperReference(
  config: HarmonConfig,
  weights: WeightSource,
  inp: Omit<SamplerInputs, 'cfg'>,
): Float64Array {
  const rw = loadDiffusionReference(config, weights);
  const s = diffusionSchedule(config.diffusion);
  const { n } = inp;
  const x = Float64Array.from(inp.xT);
  for (let i = config.diffusion.samplingSteps - 1; i >= 0; i--) {
    const xin = new Float64Array(2 * n * 16);
    xin.set(x, 0);
    xin.set(x, n * 16);
    const out = diffusionMlpReference(config, rw, {
      x: xin,
      t: new Array(2 * n).fill(s.timesteps[i]),
      c: inp.c,
    });
    for (let r = 0; r < n; r++) {
      for (let k = 0; k < 16; k++) {
        const ec = out[r * 32 + k];
        const eu = out[(r + n) * 32 + k];
        const eps = eu + inp.cfgScale * (ec - eu);
        const v = out[r * 32 + 16 + k];
        const xt = x[r * 16 + k];
        const mean = s.c1[i] * (s.sra[i] * xt - s.srm1[i] * eps) + s.c2[i] * xt;
        const frac = (v + 1) / 2;
        const logVar = frac * s.maxLog[i] + (1 - frac) * s.minLog[i];
        const nz = i > 0 ? 1 : 0;
        x[r * 16 + k] =
          mean + nz * Math.exp(0.5 * logVar) * inp.noise[(i * n + r) * 16 + k] * inp.temperature;
      }
    }
  }
  return x;
}

/**
 * Seeded random weights for every `mar.diffloss.net.` key (test/bench only). Linear weights
 * ~U(−1,1)/sqrt(fan_in), biases ~U(−0.1,0.1), LayerNorm 1 ± 0.1: activations stay O(1) so the
 * tests can tell conventions apart.
 */
export function randomDiffusionWeights(config: HarmonConfig, seed = 1): MemoryWeights {
  const W = config.diffusion.width;
  const D = config.mar.width;
  const m = new MemoryWeights();
  let s = seed * 1000;
  const linear = (key: string, inF: number, outF: number) => {
    m.set(`${P}${key}.weight`, [outF, inF], randomArray(outF * inF, ++s, 1 / Math.sqrt(inF)));
    m.set(`${P}${key}.bias`, [outF], randomArray(outF, ++s, 0.1));
  };
  linear('time_embed.mlp.0', 256, W);
  linear('time_embed.mlp.2', W, W);
  linear('cond_embed', D, W);
  linear('input_proj', 16, W);
  for (let j = 0; j < config.diffusion.depth; j++) {
    m.set(
      `${P}res_blocks.${j}.in_ln.weight`,
      [W],
      randomArray(W, ++s, 0.1).map((v) => 1 + v),
    );
    m.set(`${P}res_blocks.${j}.in_ln.bias`, [W], randomArray(W, ++s, 0.1));
    linear(`res_blocks.${j}.mlp.0`, W, W);
    linear(`res_blocks.${j}.mlp.2`, W, W);
    linear(`res_blocks.${j}.adaLN_modulation.1`, W, 3 * W);
  }
  linear('final_layer.adaLN_modulation.1', W, 2 * W);
  linear('final_layer.linear', W, 32);
  return m;
}

/** IEEE binary16 bits -> number. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** The same weights rounded to fp16, for checking fp16-weight graphs without fp16 noise. */
export function roundWeightsToFp16(weights: WeightSource): MemoryWeights {
  const out = new MemoryWeights();
  for (const name of weights.names()) {
    const e = weights.get(name)!;
    out.set(
      name,
      e.shape,
      e.read().map((v) => halfToFloat(float32ToFloat16Bits(v))),
    );
  }
  return out;
}
