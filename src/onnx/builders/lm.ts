/**
 * `lm.onnx`: the one graph that holds the Qwen2 decoder, the tied embedding table and the MAR
 * encoder and decoder, so each of their weights is stored once and held once (one session, one
 * node reading each weight: onnxruntime pre-packs a MatMul weight once per node and per session,
 * and a weight read by two graphs would live in two sessions). It serves every LLM call:
 *
 *   generate, text prefill   input_ids = prompt rows                     → present.*
 *   generate, image pass     input_ids = <image>×(V+64), tokens, pred_idx → z
 *   describe, prefill        input_ids with N+64 <image> slots, tokens    → logits, present.*
 *   describe, decode         input_ids = [next id], past = cache          → logits, present.*
 *
 *   input_ids [B,S] ─ Gather(E) ───────────────────────────────────────────┐ text rows
 *   tokens [B,V,16], visible_idx [B,V], enc_pos_grid [N,D]                  │
 *     └─ If any <image> in input_ids: MAR encoder ─ llm_in [B,V+64,H] ──────┤ k-th <image> slot
 *                                                 └ x_enc [B,64+V,D]        │ of a row ← llm_in[k]
 *   attention_mask [B,P+S], position_ids [B,S], past_key_values.*    inputs_embeds [B,S,H]
 *     └─ Qwen2 decoder ─ last_hidden_state [B,S,H], present.{l}.* [B,kv,P+S,hd]
 *   pred_idx [B,K], dec_pos_grid, diff_pos_grid
 *     └─ If K > 0: MAR decoder(x_enc, last_hidden_state, …) ─ z [B,K,D]   (S must be V+64)
 *   logits_at [R,2] (row, position) ─ GatherND(last_hidden_state) ─ ·Eᵀ ─ logits [R,vocab]
 *
 * Why the Ifs: onnxruntime runs every node of a graph whatever outputs are requested (measured),
 * so a text call must not pay for the MAR networks; the branches read their weights from the
 * outer scope, where they are pre-packed once. Why logits_at: R = 0 rows skips the lm_head
 * (generate never touches the 136 M-value table beyond the rows it embeds), and R rows at
 * per-row positions let a batch of right-padded prompts each take its own last token. The
 * lm_head is MatMul(E, hᵀ) with the table as the left operand: onnxruntime pre-packs only a
 * constant right operand, so the same table serves Gather and lm_head with no packed copy.
 *
 * Every row is independent (own mask, positions, cache, visible and predicted indices), so rows of
 * different requests can share one call as long as they share S, V and K.
 */
import type { HarmonConfig } from '../../model/config.ts';
import type { AttentionChunking } from '../../model/run-budget.ts';
import { type BuildContext, type WeightDType, weight } from '../graph/context.ts';
import { GraphBuilder } from '../graph/graph-builder.ts';
import type { WeightSource } from '../weights/types.ts';
import { chunkingOf, declareCacheInputs, declarePresentOutputs, EMBED_KEY, emitQwen2Decoder } from './llm.ts';
import { emitMarDecoder } from './mar-decoder.ts';
import { emitMarEncoder } from './mar-encoder.ts';

export interface LmBuildOptions {
  weightDType?: WeightDType;
  keyPrefix?: string;
  /** The `<image>` id whose slots take the MAR encoder's rows (manifest tokenizer.imageTokenId). */
  imageTokenId: number;
  /** Query chunks of long runs' LLM attention (default LLM_ATTENTION_CHUNKING); null: never split. */
  attentionChunking?: AttentionChunking | null;
}

export function buildLm(config: HarmonConfig, weights: WeightSource, opts: LmBuildOptions): GraphBuilder {
  const c = config.llm;
  const { width: d, tokenChannels } = config.mar;
  const g = new GraphBuilder('lm');
  const ctx: BuildContext = {
    g,
    weights,
    weightDType: opts.weightDType ?? 'float32',
    keyPrefix: opts.keyPrefix,
  };
  const ids = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const cache = declareCacheInputs(g, c);
  const tokens = g.input('tokens', 'float32', ['batch_size', 'V', tokenChannels]);
  const visibleIdx = g.input('visible_idx', 'int64', ['batch_size', 'V']);
  const encGrid = g.input('enc_pos_grid', 'float32', ['N', d]);
  const predIdx = g.input('pred_idx', 'int64', ['batch_size', 'K']);
  const decGrid = g.input('dec_pos_grid', 'float32', ['N', d]);
  const diffGrid = g.input('diff_pos_grid', 'float32', ['N', d]);
  const logitsAt = g.input('logits_at', 'int64', ['R', 2]);

  const table = g.scope('embed_tokens', () => weight(ctx, EMBED_KEY, [c.vocab, c.hidden])); // E [vocab,H]
  const batch = g.op1('Shape', [ids], { attrs: { start: 0, end: 1 } }); // [1] = B
  /** Zeros [B, ...rest] (an If branch that does not run its network still returns a tensor). */
  const zeros = (b: GraphBuilder, rest: number[]) =>
    b.op1('ConstantOfShape', [b.op1('Concat', [batch, b.ints(rest)], { attrs: { axis: 0 } })]);

  const isImage = g.op1('Equal', [ids, g.constant('int64', [], [opts.imageTokenId])]); // [B,S] bool
  const imageCount = g.op1('Cast', [isImage], { attrs: { to: 7 } }); // [B,S] int64

  const [xEnc, llmIn] = g.scope('mar_encoder', () => {
    const run = g.subgraph('mar_encoder');
    const out = emitMarEncoder({ ...ctx, g: run }, config, { tokens, visibleIdx, posGrid: encGrid });
    run.output(out.xEnc, '/mar_encoder/x_enc', 'float32', ['batch_size', '64+V', d]);
    run.output(out.llmIn, '/mar_encoder/llm_in', 'float32', ['batch_size', 'V+64', c.hidden]);
    const skip = g.subgraph('no_image');
    skip.output(zeros(skip, [0, d]), '/no_image/x_enc', 'float32', ['batch_size', 0, d]);
    skip.output(zeros(skip, [1, c.hidden]), '/no_image/llm_in', 'float32', ['batch_size', 1, c.hidden]);
    const any = g.op1('Greater', [
      g.op1('ReduceSum', [imageCount], { attrs: { keepdims: 0 } }),
      g.constant('int64', [], [0]),
    ]);
    return g.op('If', [any], { outputs: 2, attrs: { then_branch: run, else_branch: skip } });
  });

  const embeds = g.scope('inputs_embeds', () => {
    const text = g.op1('Gather', [table, ids], { attrs: { axis: 0 } }); // [B,S,H]
    // Slot k of a row (k-th <image> id) takes llm_in row k: inclusive CumSum − 1, floored at 0
    // so text positions index a valid row (their value is discarded by the Where).
    const seen = g.op1('CumSum', [imageCount, g.constant('int64', [], [1])]);
    const slot = g.op1('Max', [
      g.op1('Sub', [seen, g.constant('int64', [], [1])]),
      g.constant('int64', [], [0]),
    ]);
    const image = g.op1('GatherND', [llmIn, g.op1('Unsqueeze', [slot, g.ints([-1])])], {
      attrs: { batch_dims: 1 },
    }); // [B,S,H]
    return g.op1('Where', [g.op1('Unsqueeze', [isImage, g.ints([-1])]), image, text]);
  });

  const { hidden, presents } = g.scope('llm', () =>
    emitQwen2Decoder(ctx, c, { embeds, ...cache }, chunkingOf(opts)),
  );

  const z = g.scope('mar_decoder', () => {
    const run = g.subgraph('mar_decoder');
    const out = emitMarDecoder({ ...ctx, g: run }, config, {
      xEnc,
      llmOut: hidden,
      visibleIdx,
      predIdx,
      decGrid,
      diffGrid,
    });
    run.output(out, '/mar_decoder/z', 'float32', ['batch_size', 'K', d]);
    const skip = g.subgraph('no_prediction');
    skip.output(zeros(skip, [0, d]), '/no_prediction/z', 'float32', ['batch_size', 0, d]);
    const k = g.op1('Shape', [predIdx], { attrs: { start: 1, end: 2 } }); // [1] = K
    const any = g.op1('Greater', [g.op1('Squeeze', [k, g.ints([0])]), g.constant('int64', [], [0])]);
    return g.op1('If', [any], { attrs: { then_branch: run, else_branch: skip } });
  });

  const logits = g.scope('lm_head', () => {
    const rows = g.op1('GatherND', [hidden, logitsAt]); // [R,H]
    const t = g.op1('MatMul', [table, g.op1('Transpose', [rows], { attrs: { perm: [1, 0] } })]); // [vocab,R]
    return g.op1('Transpose', [t], { attrs: { perm: [1, 0] } }); // [R,vocab]
  });

  g.output(logits, 'logits', 'float32', ['R', c.vocab]);
  g.output(z, 'z', 'float32', ['batch_size', 'K', d]);
  g.output(hidden, 'last_hidden_state', 'float32', ['batch_size', 'sequence_length', c.hidden]);
  declarePresentOutputs(g, c, presents);
  return g;
}
