/**
 * Text → image (spec §2, §3.8, §6.11, Appendix A), batched for G = count images:
 *
 *   prompts ─tokenize─► ids [B,L] ─lm (prefill)─► text KV cache (kept, never grown)
 *   for k = 0..T−1:   one lm run = MAR encoder → LLM image pass → MAR decoder (src/onnx/builders/lm.ts)
 *     tokens[:, visible] ─ lm (ids <image>×S, mask [tm ‖ 1], positions len_b + 0..S−1,
 *                              past = text cache, pred_idx) ─► z [B,K,D]
 *                              (rows: conditional first, indices ascending per row)
 *     z ─diffusion_sampler (guided rows with CFG, unguided at cfg = 1)─► x_0 [G·K,16] ─► write back
 *   tokens [G,h,w,16] ─vae_decoder─► rgb [G,16h,16w,3] ─► PNG
 *
 * Session runs per request: 1 prefill + T × (lm + diffusion_sampler) + 1 vae_decoder = 2T + 2.
 *
 * B = 2G with CFG (rows G..2G−1 are the unconditional twins), G without. One PRNG, seeded by
 * the user, owns every draw through named forks: `order`/g (one permutation per image, shared
 * with its twin), `x_T`/g/k and `noise`/g/k (per image and step). Because each draw depends only
 * on its name, previews, cfg = 1 and the batch size never shift another stage's randomness.
 */
import type { HostTensor } from '../runtime/tensors.ts';
import { int64 } from '../runtime/tensors.ts';
import { AppError } from '../shared/errors.ts';
import { type GenerateInput, resolveGenerateOptions } from '../shared/job-inputs.ts';
import type { CancelSignal, EncodedImage, EventSink, GenerateResult, StepDebugInfo } from './events.ts';
import {
  emptyPast,
  type HarmonModel,
  outF32,
  presentAsPast,
  presentNames,
  RequestTimer,
  throwIfCanceled,
} from './harmon-model.ts';
import { encodeImage } from './image-io.ts';
import { imageSlotIds, lmFeeds } from './lm-feeds.ts';
import {
  gatherVisible,
  imagePassFeeds,
  rowIndices,
  samplerRows,
  stepIndices,
  writeBack,
} from './mar-batch.ts';
import { cfgScales, maskSchedule } from './mask-schedule.ts';
import { Rng } from './prng.ts';
import { buildGeneratePrompt } from './prompts.ts';

const C = 16; // latent channels per token

export interface GenerateRunOptions {
  onEvent?: EventSink;
  signal?: CancelSignal;
  /** Emit a preview image every N MAR steps (0 or absent: never). */
  previewEvery?: number;
  /** Instrumentation for the step-level tests. */
  onStepDebug?: (info: StepDebugInfo) => void;
  /** Return the final latents per image (reference tests). */
  returnLatents?: boolean;
}

/** x_T [n,16] and ξ [S,n,16] for one step; image g's rows come from its own forks. */
export function samplerNoise(rng: Rng, step: number, predicted: Int32Array[], samplingSteps: number) {
  const n = predicted.reduce((a, p) => a + p.length, 0);
  const xT = new Float32Array(n * C);
  const noise = new Float32Array(samplingSteps * n * C); // [S, n, 16]
  let off = 0;
  predicted.forEach((idx, g) => {
    const k = idx.length;
    xT.set(rng.fork('x_T', g, step).normal(k * C), off * C);
    const xi = rng.fork('noise', g, step).normal(samplingSteps * k * C); // [S, K, 16]
    for (let i = 0; i < samplingSteps; i++)
      noise.set(xi.subarray(i * k * C, (i + 1) * k * C), (i * n + off) * C);
    off += k;
  });
  return { n, xT, noise };
}

export function generationOrders(rng: Rng, images: number, n: number): Int32Array[] {
  return Array.from({ length: images }, (_, g) => rng.fork('order', g).permutation(n));
}

export async function generate(
  model: HarmonModel,
  input: GenerateInput,
  run: GenerateRunOptions = {},
): Promise<GenerateResult> {
  const cfg = model.config;
  const o = resolveGenerateOptions(input, { maxImageSize: cfg.maxImageSize });
  const emit = run.onEvent ?? (() => {});
  const timer = new RequestTimer(model);
  const side = o.size / 16;
  const N = side * side;
  const G = o.count;
  const { llm, mar } = cfg;
  const S_DIFF = cfg.diffusion.samplingSteps;
  const schedule = maskSchedule(N, o.steps);
  const scales = cfgScales(o.cfgSchedule, o.cfg, schedule);
  const withCfg = o.cfg !== 1;

  emit({ type: 'stage', stage: 'tokenize' });
  const batch = await timer.time('tokenize', () =>
    buildGeneratePrompt(model.tokenizer, { prompt: o.prompt, cfgPrompt: o.cfgPrompt, cfg: o.cfg, count: G }),
  );
  const B = batch.batch;
  const L = batch.maxLength;
  throwIfCanceled(run.signal, 'generation');

  // Text prefill (§2.4): all-ones mask and positions 0..L−1 reproduce the reference's None/None.
  emit({ type: 'stage', stage: 'prefill' });
  const textCache = await timer.time('prefill', async () => {
    const feeds = lmFeeds(cfg, {
      inputIds: int64([B, L], batch.ids),
      attentionMask: { dtype: 'int64', dims: [B, L], data: new BigInt64Array(B * L).fill(1n) },
      positionIds: {
        dtype: 'int64',
        dims: [B, L],
        data: BigInt64Array.from({ length: B * L }, (_, i) => BigInt(i % L)),
      },
      past: emptyPast(llm, B),
    });
    const out = await model.runtime.run('lm', feeds, presentNames(llm.layers));
    return presentAsPast(out, llm.layers);
  });

  const rng = Rng.fromSeed(o.seed);
  const orders = generationOrders(rng, G, N);
  const tokens = new Float32Array(G * N * C); // [G, N, 16], zeros = unknown
  const grids = model.gridTables(side, side);
  const posGrid = (data: Float32Array): HostTensor => ({ dtype: 'float32', dims: [N, mar.width], data });
  const imageTokenId = model.manifest.tokenizer.imageTokenId;

  emit({ type: 'stage', stage: 'mar' });
  for (let k = 0; k < o.steps; k++) {
    throwIfCanceled(run.signal, 'generation');
    const before = schedule.maskedBefore[k];
    const V = N - before;
    const S = V + mar.buffer;
    const idx = stepIndices(orders, N, before, schedule.maskedAfter[k], k === o.steps - 1);
    const K = idx.predicted[0].length;
    const visibleIdx = int64([B, V], rowIndices(idx.visible, B));

    const pass = imagePassFeeds(batch.textMask, batch.lengths, L, S);
    const z = await timer.time('mar_step', async () => {
      const feeds = lmFeeds(cfg, {
        inputIds: imageSlotIds(imageTokenId, B, S),
        attentionMask: { dtype: 'int64', dims: [B, L + S], data: pass.mask },
        positionIds: { dtype: 'int64', dims: [B, S], data: pass.positions },
        past: textCache,
        image: {
          tokens: { dtype: 'float32', dims: [B, V, C], data: gatherVisible(tokens, N, C, idx.visible, B) },
          visibleIdx,
          encPosGrid: posGrid(grids.enc),
        },
        predict: {
          predIdx: int64([B, K], rowIndices(idx.predicted, B)),
          decPosGrid: posGrid(grids.dec),
          diffPosGrid: posGrid(grids.diff),
        },
      });
      return outF32(await model.runtime.run('lm', feeds, ['z']), 'z', 'lm');
    });
    // z is [B,K,D] row-major: flattened it is already [conditional block ‖ unconditional block],
    // each block image-major with ascending token index, so row r pairs with row r + n (§2.6 j).
    const { n, xT, noise } = samplerNoise(rng, k, idx.predicted, S_DIFF);
    const rows = samplerRows(n, withCfg);
    const x0 = await timer.time('diffusion_sampler', async () =>
      outF32(
        await model.runtime.run('diffusion_sampler', {
          c: { dtype: 'float32', dims: [B * K, mar.width], data: z.data },
          x_T: { dtype: 'float32', dims: [n, C], data: xT },
          noise: { dtype: 'float32', dims: [S_DIFF, n, C], data: noise },
          row_state: { dtype: 'int64', dims: [rows.rowState.length], data: rows.rowState },
          uncond_row: { dtype: 'int64', dims: [n], data: rows.uncondRow },
          cfg_scale: { dtype: 'float32', dims: [n], data: new Float32Array(n).fill(scales[k]) },
          temperature: { dtype: 'float32', dims: [n], data: new Float32Array(n).fill(o.temperature) },
        }),
        'x_0',
        'diffusion_sampler',
      ),
    );
    // Only the conditional state exists (§3.8); the twins read the same `tokens` rows.
    writeBack(tokens, N, C, idx.predicted, x0.data);

    run.onStepDebug?.({
      step: k,
      batchRows: B,
      visible: V,
      predIdx: Array.from({ length: B }, (_, b) => Array.from(idx.predicted[b % G])),
      positionIds: Array.from({ length: B }, (_, b) =>
        Array.from(pass.positions.subarray(b * S, (b + 1) * S), Number),
      ),
      textCacheLength: textCache['past_key_values.0.key'].dims[2],
      cfgScale: scales[k],
      guided: withCfg,
      conditionRows: B * K,
    });
    emit({ type: 'step', step: k + 1, totalSteps: o.steps, predicted: K, at: Date.now() });
    if (run.previewEvery && run.previewEvery > 0 && (k + 1) % run.previewEvery === 0 && k + 1 < o.steps) {
      const images = await timer.time('preview', () => decodeToPng(model, tokens, G, side));
      emit({ type: 'preview', step: k + 1, totalSteps: o.steps, images });
    }
  }
  throwIfCanceled(run.signal, 'generation');

  emit({ type: 'stage', stage: 'vae_decode' });
  const rgb = await timer.time('vae_decode', () => vaeDecode(model, tokens, G, side));
  emit({ type: 'stage', stage: 'encode' });
  const images = await timer.time('encode_png', () => encodePngs(rgb, G, side * 16));
  return {
    images,
    seed: o.seed,
    steps: o.steps,
    size: o.size,
    meta: timer.finish(),
    ...(run.returnLatents
      ? { latents: Array.from({ length: G }, (_, g) => tokens.slice(g * N * C, (g + 1) * N * C)) }
      : {}),
  };
}

/** tokens [G,N,16] viewed as [G,h,w,16] (raster order) → uint8 RGB [G,16h,16w,3] (§2.9, in-graph). */
async function vaeDecode(
  model: HarmonModel,
  tokens: Float32Array,
  g: number,
  side: number,
): Promise<Uint8Array> {
  const out = await model.runtime.run(
    'vae_decoder',
    { latents: { dtype: 'float32', dims: [g, side, side, C], data: tokens } },
    ['rgb'],
  );
  const rgb = out.rgb;
  if (!rgb || !(rgb.data instanceof Uint8Array))
    throw new AppError('MODEL_INVALID', 'graph vae_decoder returned no uint8 output rgb');
  return rgb.data;
}

async function encodePngs(rgb: Uint8Array, g: number, px: number): Promise<EncodedImage[]> {
  const per = px * px * 3;
  return Promise.all(
    Array.from({ length: g }, async (_, i) => ({
      data: new Uint8Array(
        await encodeImage({ width: px, height: px, data: rgb.subarray(i * per, (i + 1) * per) }, 'png'),
      ),
      width: px,
      height: px,
      contentType: 'image/png' as const,
    })),
  );
}

async function decodeToPng(
  model: HarmonModel,
  tokens: Float32Array,
  g: number,
  side: number,
): Promise<EncodedImage[]> {
  return encodePngs(await vaeDecode(model, tokens, g, side), g, side * 16);
}
