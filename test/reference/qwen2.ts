/**
 * Independent float64 Qwen2 forward written from harmon-inference.md §1.3 / §2.4 / §6.5 (not from
 * the ONNX graph): per-token loops, RMSNorm, rotate_half RoPE, GQA, the explicit mask rule
 * (key j visible to query i iff mask[b,j] = 1 and j ≤ P + i), KV cache in and out, final norm and
 * last-position logits with the tied embedding. Slow on purpose; test-only.
 *
 * `variant` switches in the classic mistakes (interleaved RoPE, h % nkv head grouping) so tests
 * can show that a wrong convention would fail their tolerance.
 */
import type { HarmonConfig } from '../../src/model/config.ts';
import type { WeightSource } from '../../src/onnx/weights/types.ts';

export interface KvPair {
  key: ArrayLike<number>; // [B,nkv,P,hd]
  value: ArrayLike<number>;
}

export interface Qwen2Inputs {
  batch: number;
  seq: number; // S new tokens
  embeds: ArrayLike<number>; // [B,S,H]
  mask: ArrayLike<number>; // [B,P+S], 1 = attend
  positions: ArrayLike<number>; // [B,S]
  past?: KvPair[]; // one per layer; omitted = P 0
  pastLength?: number; // P (required with past)
}

export interface Qwen2Variant {
  rope?: 'rotate_half' | 'interleaved';
  /** KV head read by query head h; the spec's rule is ⌊h / (nh/nkv)⌋. */
  kvHeadOf?: (h: number, heads: number, kvHeads: number) => number;
  /** Skip the logits (vocab × H work) when a test only needs hidden states. */
  logits?: boolean;
}

export interface Qwen2Outputs {
  hidden: Float64Array; // [B,S,H] after the final RMSNorm
  logits: Float64Array; // [B,vocab] at position S−1 (empty when variant.logits = false)
  present: Array<{ key: Float64Array; value: Float64Array }>; // [B,nkv,P+S,hd]
}

const specKvHead = (h: number, heads: number, kvHeads: number) => Math.floor(h / (heads / kvHeads));

function read(weights: WeightSource, name: string): Float32Array {
  const e = weights.get(name);
  if (!e) throw new Error(`reference: missing weight ${name}`);
  return e.read();
}

function linear(
  x: Float64Array,
  w: Float32Array,
  b: Float32Array | undefined,
  inF: number,
  outF: number,
): Float64Array {
  const y = new Float64Array(outF);
  for (let o = 0; o < outF; o++) {
    let s = b ? b[o] : 0;
    for (let i = 0; i < inF; i++) s += w[o * inF + i] * x[i];
    y[o] = s;
  }
  return y;
}

function rmsNorm(x: Float64Array, w: Float32Array, eps: number): Float64Array {
  let ms = 0;
  for (const v of x) ms += v * v;
  const r = 1 / Math.sqrt(ms / x.length + eps);
  return x.map((v, i) => v * r * w[i]);
}

/** Rotates one head vector in place (offset `o`, length hd) for position `pos`. */
function rope(
  x: Float64Array,
  o: number,
  hd: number,
  pos: number,
  theta: number,
  layout: 'rotate_half' | 'interleaved',
) {
  const half = hd / 2;
  for (let j = 0; j < half; j++) {
    const inv = Math.fround(1 / theta ** ((2 * j) / hd)); // fp32 inv_freq as in transformers
    const a = Math.fround(pos * inv); // fp32 angle
    const [c, s] = [Math.cos(a), Math.sin(a)];
    const [i1, i2] = layout === 'rotate_half' ? [o + j, o + j + half] : [o + 2 * j, o + 2 * j + 1];
    const [x1, x2] = [x[i1], x[i2]];
    x[i1] = x1 * c - x2 * s;
    x[i2] = x2 * c + x1 * s;
  }
}

export function qwen2Forward(
  config: HarmonConfig,
  weights: WeightSource,
  inp: Qwen2Inputs,
  variant: Qwen2Variant = {},
): Qwen2Outputs {
  const c = config.llm;
  const { batch: B, seq: S } = inp;
  const P = inp.past ? (inp.pastLength ?? 0) : 0;
  const T = P + S;
  const [H, nh, nkv, hd] = [c.hidden, c.heads, c.kvHeads, c.headDim];
  const layout = variant.rope ?? 'rotate_half';
  const kvHeadOf = variant.kvHeadOf ?? specKvHead;

  // hidden state per (b, s) token
  let xs: Float64Array[] = [];
  for (let t = 0; t < B * S; t++) xs.push(Float64Array.from({ length: H }, (_, i) => inp.embeds[t * H + i]));

  const present: Qwen2Outputs['present'] = [];
  for (let l = 0; l < c.layers; l++) {
    const p = `llm.model.layers.${l}`;
    const W = (n: string) => read(weights, `${p}.${n}`);
    const [wq, bq, wk, bk, wv, bv, wo] = [
      'q_proj.weight',
      'q_proj.bias',
      'k_proj.weight',
      'k_proj.bias',
      'v_proj.weight',
      'v_proj.bias',
      'o_proj.weight',
    ].map((n) => W(`self_attn.${n}`));
    const [ln1, ln2] = [W('input_layernorm.weight'), W('post_attention_layernorm.weight')];
    const [wg, wu, wd] = [W('mlp.gate_proj.weight'), W('mlp.up_proj.weight'), W('mlp.down_proj.weight')];

    const K = new Float64Array(B * nkv * T * hd); // present, [B,nkv,T,hd]
    const V = new Float64Array(B * nkv * T * hd);
    const kvAt = (b: number, kh: number, t: number) => ((b * nkv + kh) * T + t) * hd;
    if (inp.past) {
      for (let b = 0; b < B; b++)
        for (let kh = 0; kh < nkv; kh++)
          for (let t = 0; t < P; t++)
            for (let d = 0; d < hd; d++) {
              const src = ((b * nkv + kh) * P + t) * hd + d;
              K[kvAt(b, kh, t) + d] = inp.past[l].key[src];
              V[kvAt(b, kh, t) + d] = inp.past[l].value[src];
            }
    }
    const qs: Float64Array[] = [];
    for (let b = 0; b < B; b++)
      for (let s = 0; s < S; s++) {
        const a = rmsNorm(xs[b * S + s], ln1, c.rmsEps);
        const q = linear(a, wq, bq, H, nh * hd);
        const k = linear(a, wk, bk, H, nkv * hd);
        const v = linear(a, wv, bv, H, nkv * hd);
        const pos = inp.positions[b * S + s];
        for (let h = 0; h < nh; h++) rope(q, h * hd, hd, pos, c.ropeTheta, layout);
        for (let kh = 0; kh < nkv; kh++) {
          rope(k, kh * hd, hd, pos, c.ropeTheta, layout);
          for (let d = 0; d < hd; d++) {
            K[kvAt(b, kh, P + s) + d] = k[kh * hd + d];
            V[kvAt(b, kh, P + s) + d] = v[kh * hd + d];
          }
        }
        qs.push(q);
      }
    present.push({ key: K, value: V });

    const next: Float64Array[] = [];
    for (let b = 0; b < B; b++)
      for (let i = 0; i < S; i++) {
        const q = qs[b * S + i];
        const ctx = new Float64Array(nh * hd);
        for (let h = 0; h < nh; h++) {
          const kh = kvHeadOf(h, nh, nkv);
          const scores = new Float64Array(T).fill(Number.NEGATIVE_INFINITY);
          for (let j = 0; j < T; j++) {
            if (!(inp.mask[b * T + j] === 1 && j <= P + i)) continue; // §6.5 mask rule
            let dot = 0;
            for (let d = 0; d < hd; d++) dot += q[h * hd + d] * K[kvAt(b, kh, j) + d];
            scores[j] = dot / Math.sqrt(hd);
          }
          const max = Math.max(...scores);
          let sum = 0;
          for (let j = 0; j < T; j++)
            sum += scores[j] === Number.NEGATIVE_INFINITY ? 0 : Math.exp(scores[j] - max);
          for (let j = 0; j < T; j++) {
            if (scores[j] === Number.NEGATIVE_INFINITY) continue;
            const pj = Math.exp(scores[j] - max) / sum;
            for (let d = 0; d < hd; d++) ctx[h * hd + d] += pj * V[kvAt(b, kh, j) + d];
          }
        }
        const o = linear(ctx, wo, undefined, nh * hd, H);
        const x = xs[b * S + i].map((v, n) => v + o[n]);
        const m = rmsNorm(x, ln2, c.rmsEps);
        const gate = linear(m, wg, undefined, H, c.intermediate);
        const up = linear(m, wu, undefined, H, c.intermediate);
        const act = gate.map((g, n) => (g / (1 + Math.exp(-g))) * up[n]);
        const down = linear(act, wd, undefined, c.intermediate, H);
        next.push(x.map((v, n) => v + down[n]));
      }
    xs = next;
  }

  const normW = read(weights, 'llm.model.norm.weight');
  const hidden = new Float64Array(B * S * H);
  for (const [t, x] of xs.entries()) hidden.set(rmsNorm(x, normW, c.rmsEps), t * H);

  const wantLogits = variant.logits ?? true;
  const logits = new Float64Array(wantLogits ? B * c.vocab : 0);
  if (wantLogits) {
    const E = read(weights, 'llm.model.embed_tokens.weight'); // tied lm_head
    for (let b = 0; b < B; b++) {
      const last = (b * S + S - 1) * H;
      for (let v = 0; v < c.vocab; v++) {
        let s = 0;
        for (let i = 0; i < H; i++) s += hidden[last + i] * E[v * H + i];
        logits[b * c.vocab + v] = s;
      }
    }
  }
  return { hidden, logits, present };
}
