/**
 * Position-embedding tables for image grids other than the native 16×16 (spec §2.10, §5.1 item 14).
 * Resampling is PyTorch `interpolate(mode="bilinear", align_corners=False)` without antialias,
 * also when shrinking (PyTorch then simply skips source rows; it does not average them all).
 * Coordinates and weights are computed in float64 and each result is rounded once to fp32;
 * PyTorch computes the source coordinate in fp32, which is exact for the power-of-two ratios
 * that matter here (16 → 32, 16 → 8) and within one fp32 ulp of the weight otherwise.
 * The reference recomputes this in bf16 at every call; we compute it once per resolution.
 */
import { AppError } from '../shared/errors.ts';

export interface AxisWeights {
  /** Lower source index per output index. */
  i0: Int32Array;
  /** Upper source index (clamped to in−1). */
  i1: Int32Array;
  /** Weight of i1; i0 gets 1 − lambda. */
  lambda: Float64Array;
}

/** Per-axis sampling: src = (i + 0.5)·(in/out) − 0.5, clamped at 0; i1 = min(i0 + 1, in − 1). */
export function axisWeights(inSize: number, outSize: number): AxisWeights {
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const lambda = new Float64Array(outSize);
  const scale = inSize / outSize;
  for (let i = 0; i < outSize; i++) {
    const src = Math.max(0, (i + 0.5) * scale - 0.5);
    const lo = Math.min(Math.floor(src), inSize - 1);
    i0[i] = lo;
    i1[i] = Math.min(lo + 1, inSize - 1);
    lambda[i] = src - lo;
  }
  return { i0, i1, lambda };
}

/** Bilinear resize of a raster grid `[inH, inW, D]` to `[outH, outW, D]`. */
export function resizeGrid(
  src: Float32Array,
  inH: number,
  inW: number,
  dim: number,
  outH: number,
  outW: number,
): Float32Array {
  if (src.length !== inH * inW * dim) {
    throw new AppError(
      'WEIGHTS_INVALID',
      `A position table has ${src.length} values; expected ${inH}×${inW}×${dim}.`,
    );
  }
  if (inH === outH && inW === outW) return src.slice(); // λ = 0 everywhere: an exact copy
  const ys = axisWeights(inH, outH);
  const xs = axisWeights(inW, outW);
  const out = new Float32Array(outH * outW * dim); // [outH, outW, D]
  for (let y = 0; y < outH; y++) {
    const ly = ys.lambda[y];
    const r0 = ys.i0[y] * inW;
    const r1 = ys.i1[y] * inW;
    for (let x = 0; x < outW; x++) {
      const lx = xs.lambda[x];
      const p00 = (r0 + xs.i0[x]) * dim;
      const p01 = (r0 + xs.i1[x]) * dim;
      const p10 = (r1 + xs.i0[x]) * dim;
      const p11 = (r1 + xs.i1[x]) * dim;
      const o = (y * outW + x) * dim;
      for (let c = 0; c < dim; c++) {
        // Same grouping as PyTorch's CPU kernel: rows first blended along x, then along y.
        const top = (1 - lx) * src[p00 + c] + lx * src[p01 + c];
        const bottom = (1 - lx) * src[p10 + c] + lx * src[p11 + c];
        out[o + c] = (1 - ly) * top + ly * bottom;
      }
    }
  }
  return out;
}

/** The learned tables as stored in the checkpoint (batch dim dropped). */
export interface LearnedPosTables {
  /** `encoder_pos_embed_learned`: [buffer + native², D]. */
  encoder: Float32Array;
  /** `decoder_pos_embed_learned`: [buffer + native², D]. */
  decoder: Float32Array;
  /** `diffusion_pos_embed_learned`: [native², D]. */
  diffusion: Float32Array;
}

export interface GridPosTables {
  /** [buffer + h·w, D]: buffer rows untouched, then the resized grid in raster order. */
  encoder: Float32Array;
  /** [buffer + h·w, D]. */
  decoder: Float32Array;
  /** [h·w, D]. */
  diffusion: Float32Array;
  h: number;
  w: number;
}

export interface GridOptions {
  /** Width D of every table. */
  dim: number;
  /** Target grid rows (image height / 16). */
  h: number;
  /** Target grid columns (image width / 16). */
  w: number;
  /** Buffer rows at the start of the encoder/decoder tables (64). */
  buffer?: number;
  /** Native grid side (16). */
  native?: number;
}

/** Builds the three tables for an h×w token grid; buffer rows are never resampled. */
export function gridPosTables(learned: LearnedPosTables, opts: GridOptions): GridPosTables {
  const { dim, h, w } = opts;
  const buffer = opts.buffer ?? 64;
  const native = opts.native ?? 16;
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1) {
    throw new AppError('BAD_USER_INPUT', `The token grid must be positive integers, got ${h}×${w}.`);
  }
  const grid = native * native * dim;
  const withBuffer = (table: Float32Array, name: string): Float32Array => {
    if (table.length !== buffer * dim + grid) {
      throw new AppError(
        'WEIGHTS_INVALID',
        `${name} has ${table.length} values; expected (${buffer} + ${native}²)×${dim}.`,
      );
    }
    const out = new Float32Array((buffer + h * w) * dim); // [buffer + h·w, D]
    out.set(table.subarray(0, buffer * dim), 0);
    out.set(resizeGrid(table.subarray(buffer * dim), native, native, dim, h, w), buffer * dim);
    return out;
  };
  if (learned.diffusion.length !== grid) {
    throw new AppError(
      'WEIGHTS_INVALID',
      `diffusion_pos_embed_learned has ${learned.diffusion.length} values; expected ${native}²×${dim}.`,
    );
  }
  return {
    encoder: withBuffer(learned.encoder, 'encoder_pos_embed_learned'),
    decoder: withBuffer(learned.decoder, 'decoder_pos_embed_learned'),
    diffusion: resizeGrid(learned.diffusion, native, native, dim, h, w),
    h,
    w,
  };
}
