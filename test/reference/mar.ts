/**
 * Independent float64 reference for the MAR encoder/decoder and projectors, written from
 * harmon-inference.md §1.4, §1.5, §2.6 (b)–(f) and §4.2 — plain loops, no ONNX. Test-only.
 *
 * `MarVariant` switches individual conventions to their known-wrong alternatives so tests can
 * show that each pitfall (qkv channel order, GELU variant, LayerNorm eps, rotation direction)
 * moves the output far outside the tolerance the graphs are held to.
 */
import type { HarmonConfig } from '../../src/model/config.ts';
import type { WeightSource } from '../../src/onnx/weights/types.ts';

export interface MarVariant {
  /** 'qkv' = [q(all heads) | k | v] (timm); 'interleaved' = per head [q_h k_h v_h] (wrong). */
  qkv?: 'qkv' | 'interleaved';
  /** 'erf' = nn.GELU() (timm); 'tanh' = the approximation (wrong). */
  gelu?: 'erf' | 'tanh';
  /** LayerNorm eps for every MAR norm (spec 1e-6; the MAR class default 1e-5 is wrong). */
  lnEps?: number;
  /** 'reversed' applies the other direction's rotation; 'none' skips it (both wrong for V > 0). */
  rotation?: 'correct' | 'reversed' | 'none';
}

export interface VitShape {
  width: number;
  heads: number;
  mlpRatio: number;
}

type Get = (key: string) => Float64Array;

function getter(weights: WeightSource): Get {
  const cache = new Map<string, Float64Array>();
  return (key) => {
    let v = cache.get(key);
    if (!v) {
      const e = weights.get(key);
      if (!e) throw new Error(`reference: missing weight ${key}`);
      v = Float64Array.from(e.read());
      cache.set(key, v);
    }
    return v;
  };
}

/** erf to ~1e-15: Maclaurin series near 0, continued fraction for erfc in the tails. */
export function erf(x: number): number {
  const t = Math.abs(x);
  if (t < 2.5) {
    let sum = t;
    let term = t;
    for (let n = 1; n < 80; n++) {
      term *= (-t * t) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(t) = exp(-t²)/√π · 1/(t + (1/2)/(t + 1/(t + (3/2)/(t + …)))), evaluated bottom-up.
  let f = t;
  for (let k = 60; k >= 1; k--) f = t + k / 2 / f;
  return Math.sign(x) * (1 - Math.exp(-t * t) / Math.sqrt(Math.PI) / f);
}

export function gelu(x: number, variant: 'erf' | 'tanh' = 'erf'): number {
  if (variant === 'tanh') return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

const silu = (x: number) => x / (1 + Math.exp(-x));

/** PyTorch Linear over `rows` rows: W stored [out, in]. */
export function linear(
  x: Float64Array,
  rows: number,
  w: Float64Array,
  b: Float64Array | undefined,
  inF: number,
  outF: number,
) {
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outF; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i];
      y[r * outF + o] = s;
    }
  }
  return y;
}

export function layerNorm(
  x: Float64Array,
  rows: number,
  width: number,
  w: Float64Array,
  b: Float64Array,
  eps: number,
) {
  const y = new Float64Array(rows * width);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let c = 0; c < width; c++) mean += x[r * width + c];
    mean /= width;
    let v = 0;
    for (let c = 0; c < width; c++) v += (x[r * width + c] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / width + eps);
    for (let c = 0; c < width; c++) y[r * width + c] = (x[r * width + c] - mean) * inv * w[c] + b[c];
  }
  return y;
}

function ln(get: Get, key: string, x: Float64Array, rows: number, width: number, eps: number) {
  return layerNorm(x, rows, width, get(`${key}.weight`), get(`${key}.bias`), eps);
}

function lin(get: Get, key: string, x: Float64Array, rows: number, inF: number, outF: number) {
  return linear(x, rows, get(`${key}.weight`), get(`${key}.bias`), inF, outF);
}

/** timm Block on ONE sequence `x` [T, D] (bidirectional, no mask); returns a new array. */
export function vitBlock(
  weights: WeightSource | Get,
  key: string,
  x: Float64Array,
  T: number,
  shape: VitShape,
  variant: MarVariant = {},
) {
  const get = typeof weights === 'function' ? weights : getter(weights);
  const D = shape.width;
  const nh = shape.heads;
  const hd = D / nh;
  const eps = variant.lnEps ?? 1e-6;
  const a = ln(get, `${key}.norm1`, x, T, D, eps);
  const qkv = lin(get, `${key}.attn.qkv`, a, T, D, 3 * D); // [T, 3D]
  // Channel of (part p ∈ {q,k,v}, head h, dim j) inside the fused 3D output.
  const ch =
    variant.qkv === 'interleaved'
      ? (p: number, h: number, j: number) => h * 3 * hd + p * hd + j
      : (p: number, h: number, j: number) => p * D + h * hd + j;
  const ctx = new Float64Array(T * D);
  const scale = hd ** -0.5;
  const logits = new Float64Array(T);
  for (let h = 0; h < nh; h++) {
    for (let i = 0; i < T; i++) {
      let max = -Infinity;
      for (let t = 0; t < T; t++) {
        let s = 0;
        for (let j = 0; j < hd; j++) s += qkv[i * 3 * D + ch(0, h, j)] * qkv[t * 3 * D + ch(1, h, j)];
        logits[t] = s * scale;
        if (logits[t] > max) max = logits[t];
      }
      let den = 0;
      for (let t = 0; t < T; t++) {
        logits[t] = Math.exp(logits[t] - max);
        den += logits[t];
      }
      for (let j = 0; j < hd; j++) {
        let s = 0;
        for (let t = 0; t < T; t++) s += logits[t] * qkv[t * 3 * D + ch(2, h, j)];
        ctx[i * D + h * hd + j] = s / den;
      }
    }
  }
  const attn = lin(get, `${key}.attn.proj`, ctx, T, D, D);
  const x1 = x.map((v, i) => v + attn[i]);
  const b = ln(get, `${key}.norm2`, x1, T, D, eps);
  const hidden = D * shape.mlpRatio;
  const f = lin(get, `${key}.mlp.fc1`, b, T, D, hidden).map((v) => gelu(v, variant.gelu ?? 'erf'));
  const m = lin(get, `${key}.mlp.fc2`, f, T, hidden, D);
  return x1.map((v, i) => v + m[i]);
}

/** Row r of a [rows, width] table as a view. */
const row = (t: ArrayLike<number>, r: number, width: number) =>
  Array.from({ length: width }, (_, c) => t[r * width + c]);

export interface MarEncodeInputs {
  /** [B, V, 16] flattened, ascending index order within each row. */
  tokens: ArrayLike<number>;
  /** B rows of V raster indices each (all rows the same V). */
  visibleIdx: number[][];
  /** [N, D] flattened image rows of the (interpolated) encoder pos-embed. */
  encPosGrid: ArrayLike<number>;
}

/** §2.6 (b)–(c): returns x_enc [B, 64+V, D] and llm_in [B, V+64, H] (flattened). */
export function marEncode(
  config: HarmonConfig,
  weights: WeightSource,
  inputs: MarEncodeInputs,
  variant: MarVariant = {},
) {
  const get = getter(weights);
  const { width: D, buffer: nb, tokenChannels: C, encoderDepth } = config.mar;
  const H = config.llm.hidden;
  const eps = variant.lnEps ?? 1e-6;
  const B = inputs.visibleIdx.length;
  const V = B ? inputs.visibleIdx[0].length : 0;
  const T = nb + V;
  const fake = get('mar.fake_latent');
  const posTable = get('mar.encoder_pos_embed_learned');
  const xEnc = new Float64Array(B * T * D);
  const llmIn = new Float64Array(B * T * H);
  for (let bi = 0; bi < B; bi++) {
    let x = new Float64Array(T * D);
    for (let s = 0; s < nb; s++) for (let c = 0; c < D; c++) x[s * D + c] = fake[c] + posTable[s * D + c];
    for (let v = 0; v < V; v++) {
      const tok = Float64Array.from(row(inputs.tokens, bi * V + v, C));
      const e = lin(get, 'mar.z_proj', tok, 1, C, D);
      const pos = row(inputs.encPosGrid, inputs.visibleIdx[bi][v], D);
      for (let c = 0; c < D; c++) x[(nb + v) * D + c] = e[c] + pos[c];
    }
    x = ln(get, 'mar.z_proj_ln', x, T, D, eps);
    for (let i = 0; i < encoderDepth; i++)
      x = vitBlock(get, `mar.encoder_blocks.${i}`, x, T, config.mar, variant);
    x = ln(get, 'mar.encoder_norm', x, T, D, eps);
    xEnc.set(x, bi * T * D);
    const u = lin(get, 'proj_in.2', lin(get, 'proj_in.0', x, T, D, H).map(silu), T, H, H);
    // Correct: [u[64…63+V] ‖ u[0…63]]; 'reversed' uses the decoder's [u[V…V+63] ‖ u[0…V−1]].
    const first = variant.rotation === 'none' ? 0 : variant.rotation === 'reversed' ? V : nb;
    for (let t = 0; t < T; t++) {
      const src = (first + t) % T;
      for (let c = 0; c < H; c++) llmIn[(bi * T + t) * H + c] = u[src * H + c];
    }
  }
  return { xEnc, llmIn };
}

export interface MarDecodeInputs {
  xEnc: ArrayLike<number>; // [B, 64+V, D]
  llmOut: ArrayLike<number>; // [B, V+64, H], LLM order [visible ‖ buffer]
  visibleIdx: number[][];
  predIdx: number[][]; // B rows of K indices
  decPosGrid: ArrayLike<number>; // [N, D]
  diffPosGrid: ArrayLike<number>; // [N, D]
}

/** §2.6 (e)–(f) then the gather of §2.6 (j): returns z [B, K, D] (flattened). */
export function marDecode(
  config: HarmonConfig,
  weights: WeightSource,
  inputs: MarDecodeInputs,
  variant: MarVariant = {},
) {
  const get = getter(weights);
  const { width: D, buffer: nb, decoderDepth } = config.mar;
  const H = config.llm.hidden;
  const eps = variant.lnEps ?? 1e-6;
  const B = inputs.visibleIdx.length;
  const V = B ? inputs.visibleIdx[0].length : 0;
  const K = B ? inputs.predIdx[0].length : 0;
  const T = nb + V;
  const N = inputs.decPosGrid.length / D;
  const mask = get('mar.mask_token');
  const posTable = get('mar.decoder_pos_embed_learned');
  const z = new Float64Array(B * K * D);
  for (let bi = 0; bi < B; bi++) {
    // Correct: h' = [h[V…V+63] ‖ h[0…V−1]]; 'reversed' uses the encoder's [h[64…] ‖ h[0…63]].
    const first = variant.rotation === 'none' ? 0 : variant.rotation === 'reversed' ? nb % T : V;
    const hr = new Float64Array(T * H);
    for (let t = 0; t < T; t++) {
      const src = (first + t) % T;
      for (let c = 0; c < H; c++) hr[t * H + c] = inputs.llmOut[(bi * T + src) * H + c];
    }
    const p = lin(get, 'proj_out.2', lin(get, 'proj_out.0', hr, T, H, H).map(silu), T, H, D);
    const x = new Float64Array(T * D);
    for (let i = 0; i < T * D; i++) x[i] = inputs.xEnc[bi * T * D + i] + p[i];
    const d = lin(get, 'mar.decoder_embed', x, T, D, D);
    const S = nb + N;
    let canvas = new Float64Array(S * D);
    for (let s = 0; s < S; s++) for (let c = 0; c < D; c++) canvas[s * D + c] = mask[c];
    for (let s = 0; s < nb; s++) for (let c = 0; c < D; c++) canvas[s * D + c] = d[s * D + c];
    for (let v = 0; v < V; v++) {
      const dst = nb + inputs.visibleIdx[bi][v];
      for (let c = 0; c < D; c++) canvas[dst * D + c] = d[(nb + v) * D + c];
    }
    for (let s = 0; s < S; s++) {
      for (let c = 0; c < D; c++) {
        canvas[s * D + c] += s < nb ? posTable[s * D + c] : inputs.decPosGrid[(s - nb) * D + c];
      }
    }
    for (let i = 0; i < decoderDepth; i++)
      canvas = vitBlock(get, `mar.decoder_blocks.${i}`, canvas, S, config.mar, variant);
    canvas = ln(get, 'mar.decoder_norm', canvas, S, D, eps);
    for (let k = 0; k < K; k++) {
      const p0 = inputs.predIdx[bi][k];
      for (let c = 0; c < D; c++)
        z[(bi * K + k) * D + c] = canvas[(nb + p0) * D + c] + inputs.diffPosGrid[p0 * D + c];
    }
  }
  return z;
}
