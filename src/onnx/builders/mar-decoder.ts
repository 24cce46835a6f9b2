/**
 * `mar_decoder.onnx` (spec §2.6 (e)–(f), §6.7): the LLM-conditioned residual (`proj_out`), the
 * MAR decoder over the full `[64 buffer ‖ N grid]` canvas, and the conditions for the diffusion
 * head at the positions to predict.
 *
 *   llm_out [B,V+64,H] ─ Concat(h[:,−64:], h[:,:−64]) = [buffer ‖ visible] ─ proj_out.0 ─ SiLU ─ proj_out.2
 *                                                                                  │
 *   x_enc [B,64+V,D] ──────────────────────────────────────────────────────────── Add (no norm after)
 *                                                                                  │
 *                                                                         decoder_embed  d [B,64+V,D]
 *                                                                                  │
 *   mask_token ─ Expand [B,N,D] ─ ScatterElements(axis 1, visible_idx, d[:,64:]) ─┐│
 *                                            Concat(d[:,:64], ·) canvas [B,64+N,D] ◄┘
 *   [decoder_pos_embed_learned[0:64] ‖ dec_pos_grid] ─────────────────────── Add
 *                                                                             │
 *                                            decoder_blocks.0…L−1 ─ decoder_norm ─ drop buffer [B,N,D]
 *   diff_pos_grid [N,D] ──────────────────────────────────────────────────── Add
 *                                                                             │
 *   pred_idx [B,K] ─────────────────────────────────────── GatherElements(axis 1) ──► z [B,K,D]
 *
 * N is taken from dec_pos_grid's first dimension, so any grid size works without rebuilding.
 */
import type { HarmonConfig } from '../../model/config.ts';
import { type BuildContext, weight } from '../graph/context.ts';
import { GraphBuilder } from '../graph/graph-builder.ts';
import { layerNorm, linear, silu } from '../graph/layers.ts';
import type { WeightSource } from '../weights/types.ts';
import { bufferPosRows, checkMarShape, type MarBuildOptions, marContext, SLICE_END } from './mar-encoder.ts';
import { vitBlocks } from './vit-block.ts';

export interface MarDecoderInputs {
  xEnc: string; // [B,64+V,D]
  llmOut: string; // [B,V+64,H]
  visibleIdx: string; // [B,V] int64
  predIdx: string; // [B,K] int64
  decGrid: string; // [N,D]
  diffGrid: string; // [N,D]
}

/** Emits the decoder into `ctx.g` (a root graph or an If branch); returns z [B,K,D]. */
export function emitMarDecoder(ctx: BuildContext, config: HarmonConfig, io: MarDecoderInputs): string {
  checkMarShape(config);
  const { g } = ctx;
  const { width: d, buffer, decoderDepth, lnEps } = config.mar;
  const h = config.llm.hidden;
  const { xEnc, llmOut, visibleIdx, predIdx, decGrid, diffGrid } = io;

  /** [B,S] int64 indices -> [B,S,D] for the *Elements ops, whose indices match the data rank. */
  const expandIdx = (idx: string): string => {
    const col = g.op1('Unsqueeze', [idx, g.ints([-1])]); // [B,S] -> [B,S,1]
    const shape = g.op1('Concat', [g.op1('Shape', [idx]), g.ints([d])], { attrs: { axis: 0 } });
    return g.op1('Expand', [col, shape]); // [B,S,1] -> [B,S,D]
  };

  const x = g.scope('proj_out', () => {
    // LLM order [visible ‖ buffer] back to MAR order [buffer ‖ visible] (pitfall 3): the last
    // 64 rows are the buffer whatever V is, so negative Slice bounds need no shape arithmetic.
    const bufRows = g.op1('Slice', [llmOut, g.ints([-buffer]), g.ints([SLICE_END]), g.ints([1])]); // [B,64,H]
    const visible = g.op1('Slice', [llmOut, g.ints([0]), g.ints([-buffer]), g.ints([1])]); // [B,V,H]
    const hr = g.op1('Concat', [bufRows, visible], { name: `${g.path}/rotate/Concat`, attrs: { axis: 1 } });
    const a = linear(ctx, hr, 'proj_out.0', h, h);
    const p = linear(ctx, silu(ctx, a), 'proj_out.2', h, d); // [B,64+V,D]
    // Residual onto the already-normalised encoder output; nothing normalises the sum (pitfall 4).
    return g.op1('Add', [xEnc, p], { name: `${g.path}/residual/Add` });
  });

  return g.scope('mar', () => {
    const emb = linear(ctx, x, 'mar.decoder_embed', d, d); // [B,64+V,D]
    const canvas = g.scope('canvas', () => {
      const embBuf = g.op1('Slice', [emb, g.ints([0]), g.ints([buffer]), g.ints([1])]); // [B,64,D]
      const embVis = g.op1('Slice', [emb, g.ints([buffer]), g.ints([SLICE_END]), g.ints([1])]); // [B,V,D]
      const batch = g.op1('Shape', [xEnc], { attrs: { start: 0, end: 1 } }); // [B]
      const n = g.op1('Shape', [decGrid], { attrs: { start: 0, end: 1 } }); // [N]
      const shape = g.op1('Concat', [batch, n, g.ints([d])], { attrs: { axis: 0 } });
      const masks = g.op1('Expand', [weight(ctx, 'mar.mask_token', [1, 1, d]), shape]); // [B,N,D]
      const grid = g.op1('ScatterElements', [masks, expandIdx(visibleIdx), embVis], { attrs: { axis: 1 } });
      return g.op1('Concat', [embBuf, grid], { attrs: { axis: 1 } }); // [B,64+N,D]
    });
    const pos = g.scope('pos', () => {
      const gridRows = g.op1('Unsqueeze', [decGrid, g.ints([0])]); // [N,D] -> [1,N,D]
      const table = g.op1('Concat', [bufferPosRows(ctx, 'mar.decoder_pos_embed_learned', config), gridRows], {
        attrs: { axis: 1 },
      }); // [1,64+N,D]
      return g.op1('Add', [canvas, table]);
    });
    const blocks = vitBlocks(ctx, pos, 'mar.decoder_blocks', decoderDepth, config.mar);
    const normed = g.scope('decoder_norm', () => layerNorm(ctx, blocks, 'mar.decoder_norm', d, lnEps));
    return g.scope('diffusion_cond', () => {
      const grid = g.op1('Slice', [normed, g.ints([buffer]), g.ints([SLICE_END]), g.ints([1])]); // [B,N,D]
      const zdec = g.op1('Add', [grid, diffGrid]); // + [N,D] broadcast
      return g.op1('GatherElements', [zdec, expandIdx(predIdx)], { attrs: { axis: 1 } }); // [B,K,D]
    });
  });
}

/** The decoder as a graph of its own (module tests and the reference comparisons). */
export function buildMarDecoder(
  config: HarmonConfig,
  weights: WeightSource,
  opts: MarBuildOptions = {},
): GraphBuilder {
  const g = new GraphBuilder('mar_decoder');
  const ctx = marContext(g, weights, opts);
  const d = config.mar.width;
  const z = emitMarDecoder(ctx, config, {
    xEnc: g.input('x_enc', 'float32', ['B', '64+V', d]),
    llmOut: g.input('llm_out', 'float32', ['B', 'V+64', config.llm.hidden]),
    visibleIdx: g.input('visible_idx', 'int64', ['B', 'V']),
    predIdx: g.input('pred_idx', 'int64', ['B', 'K']),
    decGrid: g.input('dec_pos_grid', 'float32', ['N', d]),
    diffGrid: g.input('diff_pos_grid', 'float32', ['N', d]),
  });
  g.output(z, 'z', 'float32', ['B', 'K', d]);
  return g;
}
