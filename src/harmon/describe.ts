/**
 * Image → text (spec §4, §6.11):
 *
 *   bytes ─decodeImage (magic bytes, header size check)─► RGB ─expand2square(127), resize, [-1,1]─► [1,3,S,S]
 *     ─vae_encoder─► latents [1,h,w,16]
 *   lm prefill (one run, src/onnx/builders/lm.ts): prompt ids with N+64 <image> slots, latents as
 *     the MAR encoder's tokens (V = N, idx 0..N−1) whose llm_in [1,N+64,H] (image ‖ buffer) fills
 *     the slots in order (§4.3), all-ones mask, positions 0..T−1 ─► last-position logits, KV
 *   loop: repetition penalty over generated ids → argmax (or temperature/top-p sample) → stop? →
 *         lm ([id], past = KV, position P) ─► logits, KV       (one session run per token)
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
  presentNames,
  RequestTimer,
  throwIfCanceled,
} from './harmon-model.ts';
import { decodeImage, preprocessForDescribe } from './image-io.ts';
import { type LmCall, lmFeeds } from './lm-feeds.ts';
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
  throwIfCanceled(run.signal, 'description');

  const prompt = buildDescribePrompt(model.tokenizer, N + mar.buffer, o.prompt);
  const T = prompt.ids.length;
  /** One lm run over `ids` after `pastLen` cached positions: logits of the last one and the grown cache. */
  const lmStep = async (
    ids: number[],
    past: Record<string, HostTensor>,
    pastLen: number,
    encoder?: LmCall['image'],
  ) => {
    const s = ids.length;
    const out = await model.runtime.run(
      'lm',
      lmFeeds(cfg, {
        inputIds: int64([1, s], ids),
        attentionMask: {
          dtype: 'int64',
          dims: [1, pastLen + s],
          data: new BigInt64Array(pastLen + s).fill(1n),
        },
        positionIds: int64(
          [1, s],
          Array.from({ length: s }, (_, i) => pastLen + i),
        ),
        past,
        image: encoder,
        logitsAt: int64([1, 2], [0, s - 1]),
      }),
      ['logits', ...presentNames(llm.layers)],
    );
    // Copy: the logits buffer is penalised in place below.
    return {
      logits: Float32Array.from(outF32(out, 'logits', 'lm').data),
      past: presentAsPast(out, llm.layers),
    };
  };

  emit({ type: 'stage', stage: 'prefill' });
  const encoderIn: LmCall['image'] = {
    tokens: { dtype: 'float32', dims: [1, N, 16], data: latents.data }, // [1,h,w,16] -> [1,N,16] raster
    visibleIdx: int64(
      [1, N],
      Array.from({ length: N }, (_, i) => i),
    ),
    encPosGrid: { dtype: 'float32', dims: [N, mar.width], data: model.gridTables(side, side).enc },
  };
  let step = await timer.time('prefill', () => lmStep(prompt.ids, emptyPast(llm, 1), 0, encoderIn));
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
    step = await timer.time('decode', () => lmStep([id], current.past, pastLen));
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
