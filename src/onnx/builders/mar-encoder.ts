/**
 * `mar_encoder.onnx` (spec §2.6 (b)–(c), §4.2, §6.4): MAR encoder over `[64 buffer ‖ V visible]`
 * tokens, then `proj_in` and the buffer rotation into LLM order.
 *
 *   tokens [B,V,16] ─ z_proj ─────────────┐
 *   enc_pos_grid [N,D] ─ Gather(visible_idx)┴─ Add ──────────────┐ image [B,V,D]
 *   fake_latent [1,D] + encoder_pos_embed_learned[0:64] ─ Expand ┴─ Concat(axis 1) [B,64+V,D]
 *                                                                   │
 *                          z_proj_ln ─ encoder_blocks.0…L−1 ─ encoder_norm ──► x_enc
 *                                                                   │
 *                          proj_in.0 ─ SiLU ─ proj_in.2   u [B,64+V,H]
 *                                                                   │
 *                          Concat(u[:,64:], u[:,:64]) ──► llm_in [B,V+64,H] = [visible ‖ buffer]
 *
 * The grid pos-embed is an input (interpolated per resolution in TS, §2.10); only the 64 buffer
 * rows of the learned table are used from the checkpoint. V = 0 (step 0) gives empty image
 * tensors and both rotations become identities; V = N is the describe path.
 */

import type { HarmonConfig } from '../../model/config.ts';
import { AppError } from '../../shared/errors.ts';
import type { BuildContext, WeightDType } from '../graph/context.ts';
import { weight } from '../graph/context.ts';
import { GraphBuilder } from '../graph/graph-builder.ts';
import { layerNorm, linear, silu } from '../graph/layers.ts';
import type { WeightSource } from '../weights/types.ts';
import { vitBlocks } from './vit-block.ts';

export interface MarBuildOptions {
  weightDType?: WeightDType;
  keyPrefix?: string;
}

/** int64 max, the conventional "to the end" bound for Slice. */
export const SLICE_END = Number.MAX_SAFE_INTEGER;

export function marContext(g: GraphBuilder, weights: WeightSource, opts: MarBuildOptions): BuildContext {
  return { g, weights, weightDType: opts.weightDType ?? 'float32', keyPrefix: opts.keyPrefix };
}

export function checkMarShape(config: HarmonConfig): void {
  const { width, heads } = config.mar;
  if (width % heads !== 0) {
    throw new AppError('BAD_CONFIG', `MAR width ${width} must be divisible by its ${heads} heads`);
  }
}

/**
 * Rows 0…63 of a learned `[1, 64+grid, D]` pos-embed table, as `[1,64,D]`. Only these rows are
 * stored here: the grid rows live in pos_tables.onnx, so no byte of the table is stored twice.
 */
export function bufferPosRows(ctx: BuildContext, key: string, config: HarmonConfig): string {
  const { width: d, buffer, nativeGrid } = config.mar;
  const stored = (buffer + nativeGrid * nativeGrid) * d;
  return weight(ctx, key, [1, buffer, d], (t) => {
    if (t.length !== stored) return t; // misshaped: weight() reports it with the checkpoint shape
    return t.subarray(0, buffer * d);
  });
}

export interface MarEncoderInputs {
  tokens: string; // [B,V,16]
  visibleIdx: string; // [B,V] int64
  posGrid: string; // [N,D]
}

/** Emits the encoder into `ctx.g` (a root graph or an If branch); returns x_enc and llm_in. */
export function emitMarEncoder(ctx: BuildContext, config: HarmonConfig, io: MarEncoderInputs) {
  checkMarShape(config);
  const { g } = ctx;
  const { width: d, buffer, tokenChannels, encoderDepth, lnEps } = config.mar;
  const h = config.llm.hidden;
  const { tokens, visibleIdx, posGrid } = io;

  const xEnc = g.scope('mar', () => {
    // Image tokens: z_proj(latent) + grid pos row of each visible index.
    const image = g.scope('image', () => {
      const z = linear(ctx, tokens, 'mar.z_proj', tokenChannels, d); // [B,V,D]
      const pos = g.op1('Gather', [posGrid, visibleIdx], { attrs: { axis: 0 } }); // [N,D] × [B,V] -> [B,V,D]
      return g.op1('Add', [z, pos]);
    });
    // Buffer slots: fake_latent (not z-projected) + learned rows 0…63, same for every row.
    const buf = g.scope('buffer', () => {
      const fake = weight(ctx, 'mar.fake_latent', [1, 1, d]);
      const rows = g.op1('Add', [fake, bufferPosRows(ctx, 'mar.encoder_pos_embed_learned', config)]); // [1,64,D]
      const batch = g.op1('Shape', [tokens], { attrs: { start: 0, end: 1 } }); // [B]
      const shape = g.op1('Concat', [batch, g.ints([buffer, d])], { attrs: { axis: 0 } });
      return g.op1('Expand', [rows, shape]); // [1,64,D] -> [B,64,D]
    });
    const seq = g.op1('Concat', [buf, image], { attrs: { axis: 1 } }); // [B,64+V,D]
    const normed = g.scope('z_proj_ln', () => layerNorm(ctx, seq, 'mar.z_proj_ln', d, lnEps));
    const blocks = vitBlocks(ctx, normed, 'mar.encoder_blocks', encoderDepth, config.mar);
    return g.scope('encoder_norm', () => layerNorm(ctx, blocks, 'mar.encoder_norm', d, lnEps));
  });

  const llmIn = g.scope('proj_in', () => {
    const a = linear(ctx, xEnc, 'proj_in.0', d, h);
    const u = linear(ctx, silu(ctx, a), 'proj_in.2', h, h); // [B,64+V,H]
    // Buffer to the end: [u[64…63+V] ‖ u[0…63]] so the 64 buffer tokens see every image token
    // under the LLM's causal mask (§2.6 (c), pitfall 3).
    const visible = g.op1('Slice', [u, g.ints([buffer]), g.ints([SLICE_END]), g.ints([1])]); // [B,V,H]
    const bufRows = g.op1('Slice', [u, g.ints([0]), g.ints([buffer]), g.ints([1])]); // [B,64,H]
    return g.op1('Concat', [visible, bufRows], { name: `${g.path}/rotate/Concat`, attrs: { axis: 1 } });
  });
  return { xEnc, llmIn };
}

/** The encoder as a graph of its own (module tests and the reference comparisons). */
export function buildMarEncoder(
  config: HarmonConfig,
  weights: WeightSource,
  opts: MarBuildOptions = {},
): GraphBuilder {
  const g = new GraphBuilder('mar_encoder');
  const ctx = marContext(g, weights, opts);
  const { width: d, tokenChannels } = config.mar;
  const { xEnc, llmIn } = emitMarEncoder(ctx, config, {
    tokens: g.input('tokens', 'float32', ['B', 'V', tokenChannels]),
    visibleIdx: g.input('visible_idx', 'int64', ['B', 'V']),
    posGrid: g.input('enc_pos_grid', 'float32', ['N', d]),
  });
  g.output(xEnc, 'x_enc', 'float32', ['B', '64+V', d]);
  g.output(llmIn, 'llm_in', 'float32', ['B', 'V+64', config.llm.hidden]);
  return g;
}
