/**
 * The Qwen2 decoder with KV cache (spec §1.3, §6.5, §6.6), Optimum / onnxruntime-genai naming.
 * `emitQwen2Decoder` is the body the shipped `lm.onnx` (builders/lm.ts) is built around;
 * `buildLlm` / `buildLlmImageStep` wrap the same body as stand-alone module graphs fed
 * `inputs_embeds` directly, which is how the tests hold it against the float64 reference.
 *
 * Attention implementation (why): com.microsoft MultiHeadAttention with an additive bias built
 * in-graph from `attention_mask` and the bottom-right causal offset, KV heads broadcast to the
 * query heads (⌊h / (nh/nkv)⌋), RoPE from `position_ids` with plain ops. GroupQueryAttention
 * was rejected because its seqlens_k model (one contiguous valid prefix per row, positions and
 * KV write offset derived from it) cannot express the image step's right-padded text cache with
 * holes and per-row start positions (§2.4); this construction is exact for prefill, decode and
 * the image step alike. RoPE is computed from the positions, so there is no max-position table.
 * Precision (§5.1-18): activations stay fp32 even with fp16 weight storage (Cast after each
 * weight), because Qwen2's residual outliers overflow pure fp16.
 *
 *   inputs_embeds [B,S,H]   position_ids [B,S]      attention_mask [B,P+S]
 *        │                      │ cos/sin [B,S,1,hd]     │ bias [B,1,S,P+S] (mask ∧ j ≤ P+i)
 *        ▼                      ▼                        ▼
 *   ┌─ layer l ──────────────────────────────────────────────────────────┐
 *   │ x ─► RMSNorm ─► q,k,v proj (+bias) ─► RoPE(q,k)                    │
 *   │                   k,v: concat(past.l, new) ─► present.l ─► repeat  │
 *   │                   MHA(q, k, v, bias) ─► o_proj ─► + x              │
 *   │   ─► RMSNorm ─► down(silu(gate)·up) ─► + x                         │
 *   └────────────────────────────────────────────────────────────────────┘
 *        ▼
 *   final RMSNorm ─► last_hidden_state [B,S,H]
 *        └─► [:, S−1] · Eᵀ (tied embed_tokens) ─► logits [B,vocab]
 */
import type { HarmonConfig, LlmConfig } from '../../model/config.ts';
import { type AttentionChunking, LLM_ATTENTION_CHUNKING } from '../../model/run-budget.ts';
import {
  applyRope,
  attentionBias,
  multiHeadAttention,
  repeatKv,
  ropeCosSin,
} from '../graph/attention-ops.ts';
import { type BuildContext, type WeightDType, weight } from '../graph/context.ts';
import { GraphBuilder } from '../graph/graph-builder.ts';
import { linear, rmsNorm, silu } from '../graph/layers.ts';
import type { WeightSource } from '../weights/types.ts';

export interface LlmBuildOptions {
  weightDType?: WeightDType;
  keyPrefix?: string;
  /** Query chunks of long runs' attention (default LLM_ATTENTION_CHUNKING); null: never split. */
  attentionChunking?: AttentionChunking | null;
}

/** The chunking a build uses: the option, else the run budget's rule. */
export const chunkingOf = (opts: { attentionChunking?: AttentionChunking | null }) =>
  opts.attentionChunking === null ? undefined : (opts.attentionChunking ?? LLM_ATTENTION_CHUNKING);

export const EMBED_KEY = 'llm.model.embed_tokens.weight';

/** Every tensor the LLM graphs read, with its checkpoint shape (spec §1.3 key table). */
export function llmWeightShapes(c: LlmConfig): Array<[string, number[]]> {
  const kv = c.kvHeads * c.headDim;
  const out: Array<[string, number[]]> = [[EMBED_KEY, [c.vocab, c.hidden]]];
  for (let l = 0; l < c.layers; l++) {
    const p = `llm.model.layers.${l}`;
    out.push(
      [`${p}.input_layernorm.weight`, [c.hidden]],
      [`${p}.self_attn.q_proj.weight`, [c.heads * c.headDim, c.hidden]],
      [`${p}.self_attn.q_proj.bias`, [c.heads * c.headDim]],
      [`${p}.self_attn.k_proj.weight`, [kv, c.hidden]],
      [`${p}.self_attn.k_proj.bias`, [kv]],
      [`${p}.self_attn.v_proj.weight`, [kv, c.hidden]],
      [`${p}.self_attn.v_proj.bias`, [kv]],
      [`${p}.self_attn.o_proj.weight`, [c.hidden, c.heads * c.headDim]],
      [`${p}.post_attention_layernorm.weight`, [c.hidden]],
      [`${p}.mlp.gate_proj.weight`, [c.intermediate, c.hidden]],
      [`${p}.mlp.up_proj.weight`, [c.intermediate, c.hidden]],
      [`${p}.mlp.down_proj.weight`, [c.hidden, c.intermediate]],
    );
  }
  out.push(['llm.model.norm.weight', [c.hidden]]);
  return out;
}

export interface DecoderInputs {
  embeds: string;
  mask: string;
  positions: string;
  past: Array<{ key: string; value: string }>;
}

/** Declares the §6.5 inputs after `inputs_embeds` (shared by every graph holding the decoder). */
export function declareCacheInputs(g: GraphBuilder, c: LlmConfig): Omit<DecoderInputs, 'embeds'> {
  const mask = g.input('attention_mask', 'int64', ['batch_size', 'total_sequence_length']);
  const positions = g.input('position_ids', 'int64', ['batch_size', 'sequence_length']);
  const past = Array.from({ length: c.layers }, (_, l) => ({
    key: g.input(`past_key_values.${l}.key`, 'float32', [
      'batch_size',
      c.kvHeads,
      'past_sequence_length',
      c.headDim,
    ]),
    value: g.input(`past_key_values.${l}.value`, 'float32', [
      'batch_size',
      c.kvHeads,
      'past_sequence_length',
      c.headDim,
    ]),
  }));
  return { mask, positions, past };
}

/** Declares present.{l}.key/.value outputs [B,kv,P+S,hd]. */
export function declarePresentOutputs(
  g: GraphBuilder,
  c: LlmConfig,
  presents: Array<{ key: string; value: string }>,
): void {
  const dims = ['batch_size', c.kvHeads, 'total_sequence_length', c.headDim];
  presents.forEach((p, l) => {
    g.output(p.key, `present.${l}.key`, 'float32', dims);
    g.output(p.value, `present.${l}.value`, 'float32', dims);
  });
}

interface LayerShared {
  bias: string; // [B,1,S,T]
  cos: string; // [B,S,1,hd]
  sin: string;
  chunking?: AttentionChunking;
}

function selfAttention(
  ctx: BuildContext,
  c: LlmConfig,
  x: string,
  key: string,
  past: DecoderInputs['past'][number],
  sh: LayerShared,
) {
  const { g } = ctx;
  const [nh, nkv, hd, H] = [c.heads, c.kvHeads, c.headDim, c.hidden];
  const q = linear(ctx, x, `${key}.q_proj`, H, nh * hd); // [B,S,nh·hd], head-major channels
  const k = linear(ctx, x, `${key}.k_proj`, H, nkv * hd);
  const v = linear(ctx, x, `${key}.v_proj`, H, nkv * hd);
  const q4 = g.op1('Reshape', [q, g.ints([0, 0, nh, hd])]); // [B,S,nh·hd] -> [B,S,nh,hd]
  const k4 = g.op1('Reshape', [k, g.ints([0, 0, nkv, hd])]); // [B,S,nkv·hd] -> [B,S,nkv,hd]
  const v4 = g.op1('Reshape', [v, g.ints([0, 0, nkv, hd])]);
  const qRot = g.scope('q_rotary', () => applyRope(g, q4, sh.cos, sh.sin, hd));
  const kRot = g.scope('k_rotary', () => applyRope(g, k4, sh.cos, sh.sin, hd));
  const qFlat = g.op1('Reshape', [qRot, g.ints([0, 0, nh * hd])]); // [B,S,nh,hd] -> [B,S,nh·hd]
  const kNew = g.op1('Transpose', [kRot], { attrs: { perm: [0, 2, 1, 3] } }); // -> [B,nkv,S,hd]
  const vNew = g.op1('Transpose', [v4], { attrs: { perm: [0, 2, 1, 3] } }); // -> [B,nkv,S,hd]
  const presentKey = g.op1('Concat', [past.key, kNew], { attrs: { axis: 2 } }); // [B,nkv,P+S,hd]
  const presentValue = g.op1('Concat', [past.value, vNew], { attrs: { axis: 2 } });
  const kAll = g.scope('repeat_k', () => repeatKv(g, presentKey, nkv, nh / nkv, hd)); // [B,nh,P+S,hd]
  const vAll = g.scope('repeat_v', () => repeatKv(g, presentValue, nkv, nh / nkv, hd));
  const attn = multiHeadAttention(g, qFlat, kAll, vAll, sh.bias, nh, hd, sh.chunking); // [B,S,nh·hd]
  const out = linear(ctx, attn, `${key}.o_proj`, nh * hd, H, false); // o_proj has no bias
  return { out, presentKey, presentValue };
}

function mlp(ctx: BuildContext, c: LlmConfig, x: string, key: string): string {
  const gate = linear(ctx, x, `${key}.gate_proj`, c.hidden, c.intermediate, false);
  const up = linear(ctx, x, `${key}.up_proj`, c.hidden, c.intermediate, false);
  const act = ctx.g.op1('Mul', [silu(ctx, gate), up]);
  return linear(ctx, act, `${key}.down_proj`, c.intermediate, c.hidden, false);
}

/** The Qwen2 body: hidden state after the final RMSNorm plus every layer's present K/V. */
export function emitQwen2Decoder(
  ctx: BuildContext,
  c: LlmConfig,
  io: DecoderInputs,
  chunking?: AttentionChunking,
) {
  const { g } = ctx;
  if (c.heads % c.kvHeads !== 0) throw new Error(`heads ${c.heads} not a multiple of kvHeads ${c.kvHeads}`);
  const newTokens = g.op1('Shape', [io.embeds], { attrs: { start: 1, end: 2 } }); // [1] = S
  const bias = attentionBias(g, io.mask, newTokens);
  const { cos, sin } = ropeCosSin(g, io.positions, c.headDim, c.ropeTheta);
  const presents: Array<{ key: string; value: string }> = [];
  let x = io.embeds;
  for (let l = 0; l < c.layers; l++) {
    const key = `llm.model.layers.${l}`;
    x = g.scope(`layers.${l}`, () => {
      const a = g.scope('input_layernorm', () =>
        rmsNorm(ctx, x, `${key}.input_layernorm`, c.hidden, c.rmsEps),
      );
      const attn = g.scope('attn', () =>
        selfAttention(ctx, c, a, `${key}.self_attn`, io.past[l], { bias, cos, sin, chunking }),
      );
      presents.push({ key: attn.presentKey, value: attn.presentValue });
      const h = g.op1('Add', [x, attn.out]);
      const b = g.scope('post_attention_layernorm', () =>
        rmsNorm(ctx, h, `${key}.post_attention_layernorm`, c.hidden, c.rmsEps),
      );
      const m = g.scope('mlp', () => mlp(ctx, c, b, `${key}.mlp`));
      return g.op1('Add', [h, m]);
    });
  }
  const hidden = g.scope('norm', () => rmsNorm(ctx, x, 'llm.model.norm', c.hidden, c.rmsEps));
  return { hidden, presents };
}

/** Shared construction; `full` adds logits and present.* (llm.onnx), otherwise image-step outputs. */
export function buildQwen2Graph(
  name: string,
  config: HarmonConfig,
  weights: WeightSource,
  opts: LlmBuildOptions,
  full: boolean,
): GraphBuilder {
  const c = config.llm;
  const g = new GraphBuilder(name);
  const ctx: BuildContext = {
    g,
    weights,
    weightDType: opts.weightDType ?? 'float32',
    keyPrefix: opts.keyPrefix,
  };
  const embeds = g.input('inputs_embeds', 'float32', ['batch_size', 'sequence_length', c.hidden]);
  const io = { embeds, ...declareCacheInputs(g, c) };
  const { hidden, presents } = g.scope('llm', () => emitQwen2Decoder(ctx, c, io, chunkingOf(opts)));
  g.output(hidden, 'last_hidden_state', 'float32', ['batch_size', 'sequence_length', c.hidden]);
  if (!full) return g;
  g.scope('lm_head', () => {
    const last = g.op1('Gather', [hidden, g.constant('int64', [], [-1])], { attrs: { axis: 1 } }); // [B,S,H] -> [B,H]
    const table = weight(ctx, EMBED_KEY, [c.vocab, c.hidden]); // tied lm_head: E [vocab,H]
    const logits = g.op1('Gemm', [last, table], { attrs: { transB: 1 } }); // [B,H]·Eᵀ -> [B,vocab]
    g.output(logits, 'logits', 'float32', ['batch_size', c.vocab]);
  });
  declarePresentOutputs(g, c, presents);
  return g;
}

/** The §6.5 module graph: last_hidden_state, last-position logits and present.{l}.key/.value. */
export function buildLlm(
  config: HarmonConfig,
  weights: WeightSource,
  opts: LlmBuildOptions = {},
): GraphBuilder {
  return buildQwen2Graph('llm', config, weights, opts, true);
}

/** The §6.6 module graph: same weights, inputs and attention rule, only `last_hidden_state`. */
export function buildLlmImageStep(
  config: HarmonConfig,
  weights: WeightSource,
  opts: LlmBuildOptions = {},
): GraphBuilder {
  return buildQwen2Graph('llm_image_step', config, weights, opts, false);
}
