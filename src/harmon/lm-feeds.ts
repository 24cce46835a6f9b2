/**
 * Feeds of the `lm` graph (src/onnx/builders/lm.ts), which serves every LLM call of the pipelines:
 *
 *   text prefill / describe decode   ids, mask, positions, past                → present.*
 *   describe prefill                 … + image (all N latents)                  → logits, present.*
 *   generate's image pass (§2.6)     … + image (visible latents) + predict      → z
 *
 * A part left out is fed as empty tensors, which switch the graph's MAR branches off: no `image`
 * gives tokens [B,0,16] (input_ids must then hold no <image> id), no `predict` gives pred_idx
 * [B,0] (no z), no `logitsAt` gives [0,2] (no lm_head).
 */
import type { HarmonConfig } from '../model/config.ts';
import type { HostTensor } from '../runtime/tensors.ts';

export interface LmCall {
  inputIds: HostTensor; // [B,S] int64
  attentionMask: HostTensor; // [B,P+S] int64
  positionIds: HostTensor; // [B,S] int64
  /** past_key_values.{l}.key/.value [B,kv,P,hd] (emptyPast for a prefill). */
  past: Record<string, HostTensor>;
  /** The MAR encoder's inputs; its V+64 output rows fill the <image> slots of input_ids in order. */
  image?: { tokens: HostTensor; visibleIdx: HostTensor; encPosGrid: HostTensor };
  /** The MAR decoder's inputs (generate's image pass: input_ids = <image>×(V+64)). */
  predict?: { predIdx: HostTensor; decPosGrid: HostTensor; diffPosGrid: HostTensor };
  /** [R,2] int64 (row, position) pairs whose logits to compute. */
  logitsAt?: HostTensor;
}

export function lmFeeds(config: HarmonConfig, call: LmCall): Record<string, HostTensor> {
  const rows = call.inputIds.dims[0];
  const D = config.mar.width;
  const f32 = (dims: number[]): HostTensor => ({ dtype: 'float32', dims, data: new Float32Array(0) });
  const i64 = (dims: number[]): HostTensor => ({ dtype: 'int64', dims, data: new BigInt64Array(0) });
  return {
    input_ids: call.inputIds,
    attention_mask: call.attentionMask,
    position_ids: call.positionIds,
    ...call.past,
    tokens: call.image?.tokens ?? f32([rows, 0, config.mar.tokenChannels]),
    visible_idx: call.image?.visibleIdx ?? i64([rows, 0]),
    enc_pos_grid: call.image?.encPosGrid ?? f32([0, D]),
    pred_idx: call.predict?.predIdx ?? i64([rows, 0]),
    dec_pos_grid: call.predict?.decPosGrid ?? f32([0, D]),
    diff_pos_grid: call.predict?.diffPosGrid ?? f32([0, D]),
    logits_at: call.logitsAt ?? i64([0, 2]),
  };
}

/** input_ids [rows, s] all `<image>`: the image pass, where every new position is an image slot. */
export function imageSlotIds(imageTokenId: number, rows: number, s: number): HostTensor {
  return { dtype: 'int64', dims: [rows, s], data: new BigInt64Array(rows * s).fill(BigInt(imageTokenId)) };
}
