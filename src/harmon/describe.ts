/**
 * Image → text (spec §4, §6.11):
 *
 *   bytes ─decodeImage (magic bytes, header size check)─► RGB ─expand2square(127), resize, [-1,1]─► [1,3,S,S]
 *     ─vae_encoder─► latents [1,h,w,16] ─mar_encoder (V = N, idx 0..N−1)─► llm_in [1,N+64,H] (image ‖ buffer)
 *   prompt ids (with N+64 <image> slots) ─embed_tokens─► [1,T,H], <image> rows overwritten by llm_in
 *     ─llm prefill (all-ones mask, positions 0..T−1)─► logits, KV
 *   loop: repetition penalty over generated ids → argmax (or temperature/top-p sample) → stop? →
 *         embed_tokens([id]) ─llm (past = KV, position P)─► logits, KV
 *
 * Stop tokens: the reference stops only on <|im_end|> (151645); the issue asks for <|endoftext|>
 * (151643) too, which can only end a run earlier — a deliberate deviation from §4.4. The stop
 * token counts as a generated token but is not part of the returned text.
 */

import { ENDOFTEXT, IM_END } from '../model/tokens.ts';
import type { HostTensor } from '../runtime/tensors.ts';
import { int64 } from '../runtime/tensors.ts';
import { AppError } from '../shared/errors.ts';
import { type DescribeInput, LIMITS, resolveDescribeOptions } from '../shared/job-inputs.ts';
import type { CancelSignal, DescribeResult, EventSink } from './events.ts';
import {
  emptyPast,
  type HarmonModel,
  outF32,
  presentAsPast,
  RequestTimer,
  throwIfCanceled,
} from './harmon-model.ts';
import { decodeImage, preprocessForDescribe } from './image-io.ts';
import { Rng } from './prng.ts';
import { buildDescribePrompt } from './prompts.ts';

export const STOP_TOKENS: ReadonlySet<number> = new Set([IM_END, ENDOFTEXT]);

export interface DescribeRunOptions {
  onEvent?: EventSink;
  signal?: CancelSignal;
  /** Override of the stop set (tests force an early stop with it). */
  stopTokens?: ReadonlySet<number>;
}

/** §4.4: for every distinct generated id, logit / p if positive, else logit · p (in place). */
export function applyRepetitionPenalty(
  logits: Float32Array,
  generated: Iterable<number>,
  penalty: number,
): void {
  if (penalty === 1) return;
  for (const id of new Set(generated)) {
    const v = logits[id];
    logits[id] = v > 0 ? v / penalty : v * penalty;
  }
}

export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** Temperature + nucleus (top-p) sampling with one uniform draw from `rng`. */
export function sampleToken(logits: Float32Array, temperature: number, topP: number, rng: Rng): number {
  const max = logits[argmax(logits)];
  const probs = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += probs[i] = Math.exp((logits[i] - max) / temperature);
  const order = Array.from(probs.keys()).filter((i) => probs[i] / sum > 1e-12);
  order.sort((a, b) => probs[b] - probs[a] || a - b);
  let kept = 0;
  let mass = 0;
  for (const i of order) {
    mass += probs[i];
    kept++;
    if (mass / sum >= topP) break;
  }
  const u = rng.nextFloat64() * mass;
  let acc = 0;
  for (let j = 0; j < kept; j++) {
    acc += probs[order[j]];
    if (u < acc) return order[j];
  }
  return order[kept - 1];
}

export async function describe(
  model: HarmonModel,
  image: Uint8Array,
  input: DescribeInput,
  run: DescribeRunOptions = {},
): Promise<DescribeResult> {
  const cfg = model.config;
  const o = resolveDescribeOptions(input, { maxImageSize: cfg.maxImageSize });
  if (image.byteLength > LIMITS.imageMaxBytes) {
    throw new AppError(
      'IMAGE_INVALID',
      `The image file is ${image.byteLength} bytes; the limit is ${LIMITS.imageMaxBytes}.`,
    );
  }
  const emit = run.onEvent ?? (() => {});
  const timer = new RequestTimer(model);
  const { llm, mar } = cfg;
  const side = o.size / 16;
  const N = side * side;

  emit({ type: 'stage', stage: 'decode_image' });
  const pixels = await timer.time('decode_image', async () =>
    preprocessForDescribe(await decodeImage(image), o.size),
  );
  throwIfCanceled(run.signal, 'description');

  emit({ type: 'stage', stage: 'vae_encode' });
  const latents = await timer.time('vae_encode', async () =>
    outF32(
      await model.runtime.run('vae_encoder', {
        pixel_values: { dtype: 'float32', dims: [1, 3, o.size, o.size], data: pixels },
      }),
      'latents',
      'vae_encoder',
    ),
  );
  emit({ type: 'stage', stage: 'mar_encode' });
  const imageEmbeds = await timer.time('mar_encoder', async () => {
    const out = await model.runtime.run(
      'mar_encoder',
      {
        tokens: { dtype: 'float32', dims: [1, N, 16], data: latents.data }, // [1,h,w,16] -> [1,N,16] raster
        visible_idx: int64(
          [1, N],
          Array.from({ length: N }, (_, i) => i),
        ),
        enc_pos_grid: { dtype: 'float32', dims: [N, mar.width], data: model.gridTables(side, side).enc },
      },
      ['llm_in'],
    );
    return outF32(out, 'llm_in', 'mar_encoder'); // [1, N+64, H] = [image ‖ buffer]
  });
  throwIfCanceled(run.signal, 'description');

  emit({ type: 'stage', stage: 'prefill' });
  const prompt = buildDescribePrompt(model.tokenizer, N + mar.buffer, o.prompt);
  const T = prompt.ids.length;
  const H = llm.hidden;
  const embeds = await timer.time('embed', async () =>
    outF32(
      await model.runtime.run('embed_tokens', { input_ids: int64([1, T], prompt.ids) }),
      'inputs_embeds',
      'embed_tokens',
    ),
  );
  embeds.data.set(imageEmbeds.data, prompt.imageStart * H); // splice (§4.3): z[0] at the first <image> slot

  const decodeStep = async (inputsEmbeds: HostTensor, past: Record<string, HostTensor>, pastLen: number) => {
    const s = inputsEmbeds.dims[1];
    const out = await model.runtime.run('llm', {
      inputs_embeds: inputsEmbeds,
      attention_mask: {
        dtype: 'int64',
        dims: [1, pastLen + s],
        data: new BigInt64Array(pastLen + s).fill(1n),
      },
      position_ids: {
        dtype: 'int64',
        dims: [1, s],
        data: BigInt64Array.from({ length: s }, (_, i) => BigInt(pastLen + i)),
      },
      ...past,
    });
    // Copy: the logits buffer is penalised in place below.
    return {
      logits: Float32Array.from(outF32(out, 'logits', 'llm').data),
      past: presentAsPast(out, llm.layers),
    };
  };
  let step = await timer.time('prefill', () => decodeStep(embeds, emptyPast(llm, 1), 0));
  let pastLen = T;

  emit({ type: 'stage', stage: 'decode' });
  const stops = run.stopTokens ?? STOP_TOKENS;
  const rng = Rng.fromSeed(o.seed).fork('describe');
  const generated: number[] = [];
  const stream = model.tokenizer.streamDecoder({ skipSpecial: true });
  let stopReason: DescribeResult['stopReason'] = 'max_tokens';
  for (;;) {
    throwIfCanceled(run.signal, 'description');
    applyRepetitionPenalty(step.logits, generated, o.repetitionPenalty);
    const id = o.temperature > 0 ? sampleToken(step.logits, o.temperature, o.topP, rng) : argmax(step.logits);
    generated.push(id);
    const text = stops.has(id) ? '' : stream.push(id);
    emit({ type: 'token', index: generated.length - 1, id, text });
    if (stops.has(id)) {
      stopReason = 'stop_token';
      break;
    }
    if (generated.length >= o.maxTokens) break;
    const current = step;
    step = await timer.time('decode', async () => {
      const e = await model.runtime.run('embed_tokens', { input_ids: int64([1, 1], [id]) });
      return decodeStep(outF32(e, 'inputs_embeds', 'embed_tokens'), current.past, pastLen);
    });
    pastLen += 1;
  }
  const tail = stream.flush();
  if (tail)
    emit({ type: 'token', index: generated.length - 1, id: generated[generated.length - 1], text: tail });
  const textIds = generated.filter((id) => !stops.has(id));
  return {
    text: model.tokenizer.decode(textIds, { skipSpecial: true }),
    tokenIds: generated,
    tokenCount: generated.length,
    stopReason,
    meta: timer.finish(),
  };
}
