/**
 * `mar_step.onnx` (spec §6.10): one MAR step's condition network in ONE graph, so that per step
 * only small tensors cross the host (tokens, indices, masks, the L-token text cache in; z out)
 * instead of x_enc [B,64+V,D], llm_in and llm_out [B,V+64,H] making two round trips.
 *
 *   tokens [B,V,16], visible_idx [B,V], enc_pos_grid [N,D]
 *        │
 *   /mar_encoder ── x_enc [B,64+V,D] ─────────────────────────────┐
 *        └── llm_in [B,V+64,H]                                     │
 *   attention_mask [B,P+S], position_ids [B,S], past_key_values.*  │
 *        │                                                         │
 *   /llm_image_step ── last_hidden_state [B,S,H] ── llm_out ─► /mar_decoder ◄── visible_idx, pred_idx,
 *                                                                  │            dec_pos_grid, diff_pos_grid
 *                                                                  ▼
 *                                                             z [B,K,D]
 *
 * Built from the unfused builders themselves (composeGraphs), so the fused graph cannot drift
 * from the per-module graphs the tests check against the references. S = V + 64 and P = L.
 */
import type { HarmonConfig } from '../../model/config.ts';
import { composeGraphs } from '../graph/compose.ts';
import type { GraphBuilder } from '../graph/graph-builder.ts';
import type { WeightSource } from '../weights/types.ts';
import { buildLlmImageStep, type LlmBuildOptions } from './llm.ts';
import { buildMarDecoder } from './mar-decoder.ts';
import { buildMarEncoder, type MarBuildOptions } from './mar-encoder.ts';

export type MarStepBuildOptions = MarBuildOptions & LlmBuildOptions;

const ENC = 'mar_encoder';
const LLM = 'llm_image_step';
const DEC = 'mar_decoder';

export function buildMarStep(
  config: HarmonConfig,
  weights: WeightSource,
  opts: MarStepBuildOptions = {},
): GraphBuilder {
  const { width: d, tokenChannels } = config.mar;
  const { kvHeads, headDim, layers } = config.llm;
  const past = Array.from({ length: layers }, (_, l) =>
    (['key', 'value'] as const).map((kv) => ({
      name: `past_key_values.${l}.${kv}`,
      to: [`${LLM}:past_key_values.${l}.${kv}`],
      dims: ['B', kvHeads, 'P', headDim],
    })),
  ).flat();
  return composeGraphs({
    name: 'mar_step',
    parts: [
      { name: ENC, graph: buildMarEncoder(config, weights, opts) },
      { name: LLM, graph: buildLlmImageStep(config, weights, opts) },
      { name: DEC, graph: buildMarDecoder(config, weights, opts) },
    ],
    links: [
      [`${ENC}:llm_in`, `${LLM}:inputs_embeds`],
      [`${ENC}:x_enc`, `${DEC}:x_enc`],
      [`${LLM}:last_hidden_state`, `${DEC}:llm_out`],
    ],
    inputs: [
      { name: 'tokens', to: [`${ENC}:tokens`], dims: ['B', 'V', tokenChannels] },
      { name: 'visible_idx', to: [`${ENC}:visible_idx`, `${DEC}:visible_idx`], dims: ['B', 'V'] },
      { name: 'pred_idx', to: [`${DEC}:pred_idx`], dims: ['B', 'K'] },
      { name: 'enc_pos_grid', to: [`${ENC}:enc_pos_grid`], dims: ['N', d] },
      { name: 'dec_pos_grid', to: [`${DEC}:dec_pos_grid`], dims: ['N', d] },
      { name: 'diff_pos_grid', to: [`${DEC}:diff_pos_grid`], dims: ['N', d] },
      { name: 'attention_mask', to: [`${LLM}:attention_mask`], dims: ['B', 'P+V+64'] },
      { name: 'position_ids', to: [`${LLM}:position_ids`], dims: ['B', 'V+64'] },
      ...past,
    ],
    outputs: [{ name: 'z', from: `${DEC}:z`, dims: ['B', 'K', d] }],
  });
}
