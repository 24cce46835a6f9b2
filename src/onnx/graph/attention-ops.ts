/**
 * Attention building blocks for the Qwen2 graphs: rotate_half RoPE driven by explicit
 * position_ids, the additive mask built in-graph from attention_mask plus the bottom-right causal
 * offset, and grouped-query attention through com.microsoft MultiHeadAttention.
 *
 * Why not GroupQueryAttention: its seqlens_k model assumes each row's valid keys are one
 * contiguous prefix and derives both the KV write offset and the rotary positions from it. The
 * Harmon image step attends over a right-padded text cache with holes (`[tm_b ‖ ones(S)]`) and
 * positions that start at each row's own text length, which that model cannot express. MHA with
 * an explicit additive bias reproduces the spec's rule exactly for every call (prefill, decode,
 * image step); the KV heads are broadcast to the query heads just before it.
 */

import type { AttentionChunking } from '../../model/run-budget.ts';
import { float } from './attributes.ts';
import type { GraphBuilder } from './graph-builder.ts';

/** Additive bias value for hidden keys: finite (like torch.finfo.min) so no NaN can appear. */
const MASKED = -3.4028234663852886e38;

/** 1/θ^(2j/hd) for j < hd/2, rounded to fp32 as transformers computes it. */
export function ropeInvFreq(headDim: number, theta: number): number[] {
  return Array.from({ length: headDim / 2 }, (_, j) => Math.fround(1 / theta ** ((2 * j) / headDim)));
}

/**
 * cos/sin tables for the given positions, already in the rotate_half layout `[c ‖ c]`:
 * position_ids int64 [B,S] -> cos, sin f32 [B,S,1,hd] (the 1 broadcasts over heads).
 * Computed from the positions themselves (not from a max-length cache), so any position works.
 */
export function ropeCosSin(g: GraphBuilder, positionIds: string, headDim: number, theta: number) {
  return g.scope('rotary', () => {
    const inv = ropeInvFreq(headDim, theta);
    const invFull = g.constant('float32', [headDim], [...inv, ...inv]); // [hd] = [f ‖ f]
    const pos = g.op1('Cast', [positionIds], { attrs: { to: 1 } }); // [B,S] f32
    const pos4 = g.op1('Unsqueeze', [pos, g.ints([2, 3])]); // [B,S] -> [B,S,1,1]
    const angle = g.op1('Mul', [pos4, invFull]); // [B,S,1,hd], fp32 product as in the spec
    return { cos: g.op1('Cos', [angle]), sin: g.op1('Sin', [angle]) };
  });
}

/**
 * rotate_half RoPE on x [B,S,n,hd]: x·cos + [−x₂ ‖ x₁]·sin, i.e.
 * x'[j] = x[j]·cos − x[j+hd/2]·sin and x'[j+hd/2] = x[j+hd/2]·cos + x[j]·sin (NOT interleaved).
 */
export function applyRope(g: GraphBuilder, x: string, cos: string, sin: string, headDim: number): string {
  const half = headDim / 2;
  const [x1, x2] = g.op('Split', [x, g.ints([half, half])], { outputs: 2, attrs: { axis: -1 } }); // [B,S,n,hd/2] ×2
  const rotated = g.op1('Concat', [g.op1('Neg', [x2]), x1], { attrs: { axis: -1 } }); // [B,S,n,hd]
  return g.op1('Add', [g.op1('Mul', [x, cos]), g.op1('Mul', [rotated, sin])]);
}

/**
 * Additive attention bias [B,1,S,T] from attention_mask int64 [B,T] (T = P+S) and S new tokens:
 * key j is visible to query i iff attention_mask[b,j] = 1 and j ≤ P + i (bottom-right causal).
 * Built once per graph and shared by every layer.
 */
export function attentionBias(g: GraphBuilder, attentionMask: string, newTokens: string): string {
  // newTokens: int64 [1] holding S (e.g. Shape(inputs_embeds)[1:2]).
  return g.scope('attn_bias', () => {
    const total = g.op1('Shape', [attentionMask], { attrs: { start: 1, end: 2 } }); // [1] = T
    const zero = g.constant('int64', [], [0]);
    const one = g.constant('int64', [], [1]);
    const tScalar = g.op1('Squeeze', [total, g.ints([0])]);
    const sScalar = g.op1('Squeeze', [newTokens, g.ints([0])]);
    const past = g.op1('Sub', [tScalar, sScalar]); // P
    const keyIdx = g.op1('Range', [zero, tScalar, one]); // [T]
    const queryIdx = g.op1('Unsqueeze', [g.op1('Range', [zero, sScalar, one]), g.ints([1])]); // [S,1]
    const offset = g.op1('Sub', [keyIdx, queryIdx]); // [S,T] = j − i
    const causal = g.op1('LessOrEqual', [offset, past]); // j ≤ P + i
    const keep = g.op1('Equal', [attentionMask, g.constant('int64', [], [1])]); // [B,T] bool
    const keep4 = g.op1('Unsqueeze', [keep, g.ints([1, 2])]); // [B,T] -> [B,1,1,T]
    const allowed = g.op1('And', [keep4, causal]); // [B,1,S,T]
    return g.op1('Where', [allowed, g.scalar(0), g.scalar(MASKED)]);
  });
}

/**
 * KV heads -> query heads for GQA: [B,nkv,T,hd] -> [B,nh,T,hd] where query head h reads KV head
 * ⌊h / (nh/nkv)⌋ (each KV head repeated `groups` times consecutively, transformers' repeat_kv).
 */
export function repeatKv(
  g: GraphBuilder,
  kv: string,
  kvHeads: number,
  groups: number,
  headDim: number,
): string {
  if (groups === 1) return kv;
  const dims = g.op1('Shape', [kv]); // [4]
  const bt = g.op1('Gather', [dims, g.ints([0, 2])], { attrs: { axis: 0 } }); // [B, T]
  const b = g.op1('Slice', [bt, g.ints([0]), g.ints([1])]);
  const t = g.op1('Slice', [bt, g.ints([1]), g.ints([2])]);
  const five = g.op1('Unsqueeze', [kv, g.ints([2])]); // [B,nkv,T,hd] -> [B,nkv,1,T,hd]
  const target = g.op1('Concat', [b, g.ints([kvHeads, groups]), t, g.ints([headDim])], {
    attrs: { axis: 0 },
  });
  const expanded = g.op1('Expand', [five, target]); // [B,nkv,groups,T,hd]
  const shape = g.op1('Concat', [b, g.ints([kvHeads * groups]), t, g.ints([headDim])], {
    attrs: { axis: 0 },
  });
  return g.op1('Reshape', [expanded, shape]); // [B,nkv·groups,T,hd], head h = kv·groups + r
}

/**
 * Multi-head attention of q [B,S,nh·hd] over k, v [B,nh,T,hd] with an additive bias [B,1,S,T]:
 * softmax(q·kᵀ/√hd + bias)·v, heads concatenated -> [B,S,nh·hd].
 *
 * With `chunking`, a run of more than `chunking.above` queries is computed in `chunking.chunks`
 * slices of ⌈S/chunks⌉ queries (the bias sliced alike) and concatenated: every query row still
 * sees all its keys, so the result is the same row by row, but the score matrix a call holds is
 * [B, nh, ⌈S/chunks⌉, T] instead of [B, nh, S, T] (src/model/run-budget.ts). Shorter runs take
 * the other branch of an If: one call, as without chunking.
 */
export function multiHeadAttention(
  g: GraphBuilder,
  q: string,
  k: string,
  v: string,
  bias: string,
  heads: number,
  headDim: number,
  chunking?: AttentionChunking,
): string {
  const mha = (b: GraphBuilder, query: string, queryBias: string) =>
    b.op1('MultiHeadAttention', [query, k, v, '', '', queryBias], {
      domain: 'com.microsoft',
      attrs: { num_heads: heads, scale: float(1 / Math.sqrt(headDim)) },
    });
  if (!chunking) return mha(g, q, bias);
  const { above, chunks } = chunking;
  // ⌈S/chunks⌉ · (chunks − 1) < S must hold for no slice to be empty.
  if (above < chunks * chunks)
    throw new Error(`attention chunking: above (${above}) < chunks² (${chunks ** 2})`);
  const dims = ['batch_size', 'sequence_length', heads * headDim];
  const s = g.op1('Shape', [q], { attrs: { start: 1, end: 2 } }); // [1] = S
  const long = g.op1('Greater', [g.op1('Squeeze', [s, g.ints([0])]), g.constant('int64', [], [above])]);

  const whole = g.subgraph('attention_whole');
  whole.output(mha(whole, q, bias), `${g.path}/attention_whole/out`, 'float32', dims);

  const split = g.subgraph('attention_chunks');
  const size = split.op1('Div', [split.op1('Add', [s, split.ints([chunks - 1])]), split.ints([chunks])]); // ⌈S/n⌉
  const parts: string[] = [];
  for (let i = 0; i < chunks; i++) {
    const start = split.op1('Mul', [size, split.ints([i])]);
    const end = split.op1('Min', [split.op1('Mul', [size, split.ints([i + 1])]), s]);
    const qi = split.op1('Slice', [q, start, end, split.ints([1])]); // [B,c,nh·hd]
    const bi = split.op1('Slice', [bias, start, end, split.ints([2])]); // [B,1,c,T]
    parts.push(mha(split, qi, bi));
  }
  const joined = split.op1('Concat', parts, { attrs: { axis: 1 } }); // [B,S,nh·hd]
  split.output(joined, `${g.path}/attention_chunks/out`, 'float32', dims);

  return g.op1('If', [long], { attrs: { then_branch: split, else_branch: whole } });
}
