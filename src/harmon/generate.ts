/**
 * Text → image (spec §2, §3.8, §6.11, Appendix A), batched for G = count images:
 *
 *   prompts ─tokenize─► ids [B,L] ─embed_tokens─► [B,L,H] ─llm prefill─► text KV cache (kept, never grown)
 *   for k = 0..T−1:   (mar_step.onnx runs the next three as one graph when present, §6.10)
 *     tokens[:, visible] ─mar_encoder─► x_enc [B,64+V,D], llm_in [B,V+64,H]
 *     llm_in ─llm_image_step (mask [tm ‖ 1], positions len_b + 0..S−1, past = text cache)─► h [B,S,H]
 *     x_enc, h ─mar_decoder─► z [B,K,D]   (rows: conditional first, indices ascending per row)
 *     z ─diffusion_sampler (CFG) | diffusion_sampler_nocfg (cfg = 1)─► x_0 [G·K,16] ─► write back
 *   tokens [G,h,w,16] ─vae_decoder─► rgb [G,16h,16w,3] ─► PNG
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
import { gatherVisible, imagePassFeeds, rowIndices, stepIndices, writeBack } from './mar-batch.ts';
import { type MarStepMode, marConditions, useFusedStep } from './mar-condition.ts';
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
  /** Condition network per step: fused mar_step when the model has it ('auto'), or forced. */
  marStep?: MarStepMode;
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
  const embeds = await timer.time('embed', async () =>
    outF32(
      await model.runtime.run('embed_tokens', { input_ids: int64([B, L], batch.ids) }),
      'inputs_embeds',
      'embed_tokens',
    ),
  );
  const textCache = await timer.time('prefill', async () => {
    const feeds: Record<string, HostTensor> = {
      inputs_embeds: embeds,
      attention_mask: { dtype: 'int64', dims: [B, L], data: new BigInt64Array(B * L).fill(1n) },
      position_ids: {
        dtype: 'int64',
        dims: [B, L],
        data: BigInt64Array.from({ length: B * L }, (_, i) => BigInt(i % L)),
      },
      ...emptyPast(llm, B),
    };
    const out = await model.runtime.run('llm', feeds, presentNames(llm.layers));
    return presentAsPast(out, llm.layers);
  });

  const rng = Rng.fromSeed(o.seed);
  const orders = generationOrders(rng, G, N);
  const tokens = new Float32Array(G * N * C); // [G, N, 16], zeros = unknown
  const grids = model.gridTables(side, side);
  const posGrid = (data: Float32Array): HostTensor => ({ dtype: 'float32', dims: [N, mar.width], data });
  const temperature: HostTensor = { dtype: 'float32', dims: [1], data: Float32Array.of(o.temperature) };
  const sampler = withCfg ? 'diffusion_sampler' : 'diffusion_sampler_nocfg';
  const fused = useFusedStep(model, run.marStep);

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
    const z = await marConditions(model, timer, fused, {
      tokens: { dtype: 'float32', dims: [B, V, C], data: gatherVisible(tokens, N, C, idx.visible, B) },
      visibleIdx,
      predIdx: int64([B, K], rowIndices(idx.predicted, B)),
      encPosGrid: posGrid(grids.enc),
      decPosGrid: posGrid(grids.dec),
      diffPosGrid: posGrid(grids.diff),
      attentionMask: { dtype: 'int64', dims: [B, L + S], data: pass.mask },
      positionIds: { dtype: 'int64', dims: [B, S], data: pass.positions },
      textCache,
    });
    // z is [B,K,D] row-major: flattened it is already [conditional block ‖ unconditional block],
    // each block image-major with ascending token index, so row r pairs with row r + n (§2.6 j).
    const { n, xT, noise } = samplerNoise(rng, k, idx.predicted, S_DIFF);
    const x0 = await timer.time('diffusion_sampler', async () =>
      outF32(
        await model.runtime.run(sampler, {
          c: { dtype: 'float32', dims: [B * K, mar.width], data: z.data },
          x_T: { dtype: 'float32', dims: [n, C], data: xT },
          noise: { dtype: 'float32', dims: [S_DIFF, n, C], data: noise },
          cfg_scale: { dtype: 'float32', dims: [1], data: Float32Array.of(scales[k]) },
          temperature,
        }),
        'x_0',
        sampler,
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
      sampler,
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
