/**
 * pos_tables.onnx: a graph with no inputs whose outputs are the learned 16×16 grid rows of the
 * three MAR position tables. The pipeline runs it once at load and interpolates the tables to
 * each image size in TypeScript (§2.10), so mar_encoder / mar_decoder take the grid tables as
 * inputs and one graph serves every resolution.
 *
 *   encoder_pos_embed_learned [1, 64+256, D] --rows 64..319--> enc_pos_grid16  [256, D]
 *   decoder_pos_embed_learned [1, 64+256, D] --rows 64..319--> dec_pos_grid16  [256, D]
 *   diffusion_pos_embed_learned [1, 256, D]  ---------------->  diff_pos_grid16 [256, D]
 */
import type { HarmonConfig } from '../../model/config.ts';
import { type BuildContext, type WeightDType, weight } from '../graph/context.ts';
import { GraphBuilder } from '../graph/graph-builder.ts';
import type { WeightSource } from '../weights/types.ts';

export function buildPosTables(
  config: HarmonConfig,
  weights: WeightSource,
  opts: { weightDType?: WeightDType; keyPrefix?: string } = {},
): GraphBuilder {
  const g = new GraphBuilder('pos_tables');
  // Tables stay fp32 whatever the weight dtype: they are tiny and feed every token.
  const ctx: BuildContext = { g, weights, weightDType: 'float32', keyPrefix: opts.keyPrefix };
  const { width: D, buffer, nativeGrid } = config.mar;
  const grid = nativeGrid * nativeGrid;
  const imageRows = (d: Float32Array) => d.slice(buffer * D, (buffer + grid) * D); // drop the buffer rows
  g.scope('pos_tables', () => {
    const enc = weight(ctx, 'mar.encoder_pos_embed_learned', [grid, D], imageRows);
    const dec = weight(ctx, 'mar.decoder_pos_embed_learned', [grid, D], imageRows);
    const diff = weight(ctx, 'mar.diffusion_pos_embed_learned', [grid, D]);
    g.output(enc, 'enc_pos_grid16', 'float32', [grid, D]);
    g.output(dec, 'dec_pos_grid16', 'float32', [grid, D]);
    g.output(diff, 'diff_pos_grid16', 'float32', [grid, D]);
  });
  return g;
}
