/**
 * Shared setup of the lm.onnx tests: the tiny config with a 512-row vocabulary (so `<image>` is a
 * small id), random weights, the new graph and the module graphs the old model directories
 * shipped (embed_tokens was a Gather, llm, llm_image_step, mar_encoder, mar_decoder), built by the
 * same module builders, and feed helpers for both.
 */
import { buildLlm, buildLlmImageStep, EMBED_KEY } from '../../src/onnx/builders/llm.ts';
import { buildLm } from '../../src/onnx/builders/lm.ts';
import { buildMarDecoder } from '../../src/onnx/builders/mar-decoder.ts';
import { buildMarEncoder } from '../../src/onnx/builders/mar-encoder.ts';
import { toModelBytes } from '../../src/onnx/graph/serialize.ts';
import { randomHarmonWeights } from '../../src/onnx/weights/random.ts';
import { type Feed, f32, i64, runModel } from '../helpers/ort.ts';
import { TINY_SMALL_VOCAB } from './llm-fixtures.ts';

export const cfg = TINY_SMALL_VOCAB;
export const IMG = 500; // `<image>` of this test vocabulary
export const { hidden: H, layers, kvHeads, headDim, vocab } = cfg.llm;
export const D = cfg.mar.width;
export const NB = cfg.mar.buffer;
export const weights = randomHarmonWeights(cfg, 5, { includeVae: false });
export const lmGraph = buildLm(cfg, weights, { imageTokenId: IMG });
export const lmBytes = toModelBytes(lmGraph);
export const old = {
  llm: toModelBytes(buildLlm(cfg, weights)),
  imageStep: toModelBytes(buildLlmImageStep(cfg, weights)),
  encoder: toModelBytes(buildMarEncoder(cfg, weights)),
  decoder: toModelBytes(buildMarDecoder(cfg, weights)),
};
const table = weights.get(EMBED_KEY)!.read(); // E [vocab,H]

export type Outputs = Awaited<ReturnType<typeof runModel>>;

/** What the old embed_tokens graph computed: rows of E. */
export function embedRows(ids: number[]): Float32Array {
  const out = new Float32Array(ids.length * H);
  ids.forEach((id, i) => {
    out.set(table.subarray(id * H, (id + 1) * H), i * H);
  });
  return out;
}

export function pastFeeds(rows: number, p: number, from?: Outputs): Record<string, Feed> {
  const feeds: Record<string, Feed> = {};
  for (let l = 0; l < layers; l++)
    for (const kv of ['key', 'value']) {
      const t = from?.[`present.${l}.${kv}`];
      feeds[`past_key_values.${l}.${kv}`] = f32(
        [rows, kvHeads, p, headDim],
        t ? (t.data as Float32Array) : new Float32Array(rows * kvHeads * p * headDim),
      );
    }
  return feeds;
}

export interface LmFeedParts {
  ids: number[][];
  mask: number[][];
  positions: number[][];
  past: Record<string, Feed>;
  image?: { tokens: Feed; visible: number[][]; grid: Feed };
  predict?: { pred: number[][]; dec: Feed; diff: Feed };
  logitsAt?: Array<[number, number]>;
}

/** lm feeds with the same defaults as src/harmon/lm-feeds.ts (empty tensors switch parts off). */
export function lmFeeds(p: LmFeedParts): Record<string, Feed> {
  const rows = p.ids.length;
  const at = p.logitsAt ?? [];
  const idx = (xs: number[][]) => i64([rows, xs[0]?.length ?? 0], xs.flat());
  return {
    input_ids: idx(p.ids),
    attention_mask: idx(p.mask),
    position_ids: idx(p.positions),
    ...p.past,
    tokens: p.image?.tokens ?? f32([rows, 0, 16], []),
    visible_idx: p.image ? idx(p.image.visible) : i64([rows, 0], []),
    enc_pos_grid: p.image?.grid ?? f32([0, D], []),
    pred_idx: p.predict ? idx(p.predict.pred) : i64([rows, 0], []),
    dec_pos_grid: p.predict?.dec ?? f32([0, D], []),
    diff_pos_grid: p.predict?.diff ?? f32([0, D], []),
    logits_at: i64([at.length, 2], at.flat()),
  };
}

/** The old llm.onnx on explicit embeddings. */
export function runOldLlm(
  embeds: Float32Array,
  mask: number[][],
  positions: number[][],
  past: Record<string, Feed>,
) {
  const [rows, s] = [positions.length, positions[0].length];
  return runModel(old.llm, {
    inputs_embeds: f32([rows, s, H], embeds),
    attention_mask: i64([rows, mask[0].length], mask.flat()),
    position_ids: i64([rows, s], positions.flat()),
    ...past,
  });
}
