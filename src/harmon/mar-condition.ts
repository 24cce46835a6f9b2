/**
 * The condition network of one MAR step (spec §2.6 (b)–(f)): visible latents → z [B,K,D] for the
 * diffusion sampler. Two equivalent ways to run it:
 *
 *   fused   (§6.10): mar_step                                        1 session run
 *   unfused (§6.11): mar_encoder → llm_image_step → mar_decoder      3 session runs; x_enc,
 *                    llm_in and llm_out ([B,V+64,·]) cross the host twice per step
 *
 * The fused graph is composed from the same builders (src/onnx/builders/mar-step.ts), so both
 * give the same z; the unfused path stays for model directories exported before mar_step
 * existed and for callers that want per-module timings.
 */
import type { HostTensor } from '../runtime/tensors.ts';
import { AppError } from '../shared/errors.ts';
import { type HarmonModel, outF32, type RequestTimer } from './harmon-model.ts';

/** 'auto' (default): fused when the model directory has mar_step. */
export type MarStepMode = 'auto' | 'fused' | 'unfused';

export interface MarConditionFeeds {
  tokens: HostTensor; // [B,V,16]
  visibleIdx: HostTensor; // [B,V] int64
  predIdx: HostTensor; // [B,K] int64
  encPosGrid: HostTensor; // [N,D]
  decPosGrid: HostTensor;
  diffPosGrid: HostTensor;
  attentionMask: HostTensor; // [B,L+S] int64
  positionIds: HostTensor; // [B,S] int64
  /** past_key_values.{l}.key/.value of the text prefill, [B,kv,L,hd]. */
  textCache: Record<string, HostTensor>;
}

export function useFusedStep(model: HarmonModel, mode: MarStepMode = 'auto'): boolean {
  const has = model.runtime.has('mar_step');
  if (mode === 'fused' && !has) {
    throw new AppError(
      'MODEL_INVALID',
      `model directory ${model.runtime.dir} has no mar_step graph; re-export it or run unfused`,
    );
  }
  return mode === 'fused' || (mode === 'auto' && has);
}

/** z [B,K,D] of one step, from mar_step or from the three module graphs. */
export async function marConditions(
  model: HarmonModel,
  timer: RequestTimer,
  fused: boolean,
  f: MarConditionFeeds,
): Promise<HostTensor & { data: Float32Array }> {
  const rt = model.runtime;
  if (fused) {
    return timer.time('mar_step', async () =>
      outF32(
        await rt.run(
          'mar_step',
          {
            tokens: f.tokens,
            visible_idx: f.visibleIdx,
            pred_idx: f.predIdx,
            enc_pos_grid: f.encPosGrid,
            dec_pos_grid: f.decPosGrid,
            diff_pos_grid: f.diffPosGrid,
            attention_mask: f.attentionMask,
            position_ids: f.positionIds,
            ...f.textCache,
          },
          ['z'],
        ),
        'z',
        'mar_step',
      ),
    );
  }
  const enc = await timer.time('mar_encoder', () =>
    rt.run('mar_encoder', { tokens: f.tokens, visible_idx: f.visibleIdx, enc_pos_grid: f.encPosGrid }),
  );
  const hidden = await timer.time('llm_image_step', async () =>
    outF32(
      await rt.run(
        'llm_image_step',
        {
          inputs_embeds: outF32(enc, 'llm_in', 'mar_encoder'),
          attention_mask: f.attentionMask,
          position_ids: f.positionIds,
          ...f.textCache,
        },
        ['last_hidden_state'],
      ),
      'last_hidden_state',
      'llm_image_step',
    ),
  );
  return timer.time('mar_decoder', async () =>
    outF32(
      await rt.run('mar_decoder', {
        x_enc: outF32(enc, 'x_enc', 'mar_encoder'),
        llm_out: hidden,
        visible_idx: f.visibleIdx,
        pred_idx: f.predIdx,
        dec_pos_grid: f.decPosGrid,
        diff_pos_grid: f.diffPosGrid,
      }),
      'z',
      'mar_decoder',
    ),
  );
}
