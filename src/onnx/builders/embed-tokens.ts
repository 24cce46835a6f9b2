/**
 * `embed_tokens.onnx` (spec §6.3): input_ids int64 [B,T] -> inputs_embeds f32 [B,T,H], a single
 * Gather on the embedding table `llm.model.embed_tokens.weight` [vocab,H] (not scaled, §1.3).
 */
import type { HarmonConfig } from '../../model/config.ts';
import { type BuildContext, weight } from '../graph/context.ts';
import { GraphBuilder } from '../graph/graph-builder.ts';
import type { WeightSource } from '../weights/types.ts';
import { EMBED_KEY, type LlmBuildOptions } from './llm.ts';

export function buildEmbedTokens(
  config: HarmonConfig,
  weights: WeightSource,
  opts: LlmBuildOptions = {},
): GraphBuilder {
  const { vocab, hidden } = config.llm;
  const g = new GraphBuilder('embed_tokens');
  const ctx: BuildContext = {
    g,
    weights,
    weightDType: opts.weightDType ?? 'float32',
    keyPrefix: opts.keyPrefix,
  };
  const ids = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const embeds = g.scope('embed_tokens', () => {
    const table = weight(ctx, EMBED_KEY, [vocab, hidden]);
    return g.op1('Gather', [table, ids], { attrs: { axis: 0 } }); // [B,T] -> [B,T,H]
  });
  g.output(embeds, 'inputs_embeds', 'float32', ['batch_size', 'sequence_length', hidden]);
  return g;
}
