/**
 * Activation memory of the largest single run of each session, under the run budget of
 * src/model/run-budget.ts (no run holds more than one image and its CFG twin at the model's
 * largest size; vae_decoder decodes one image per run). onnxruntime keeps each session's arena
 * at the largest run it has seen, so a worker's activation memory is the SUM over sessions of
 * each session's own peak run, not the peak of one request.
 *
 * The tensors are the ones the graphs really build (src/onnx/builders), fp32:
 * - lm, LLM part (llm.ts, attention-ops.ts): the additive bias is [rows,1,S,T] (one per row, not
 *   per head; built once, read by every layer), the present K/V of every layer are graph outputs
 *   [rows,kv,T,hd] that live until the run returns, and com.microsoft MultiHeadAttention gets
 *   K/V already repeated to the query heads [rows,heads,T,hd]. Its scores are per head:
 *   [rows,heads,S,T]. The MLP runs over the S new tokens only (the prompt is in the cache and
 *   enters only through the scores' T = prompt + S columns).
 * - lm, MAR part (vit-block.ts): encoder and decoder blocks over [rows,S,D], no mask, scores
 *   [rows,heads_mar,S,S]; the decoder also reads the LLM's last_hidden_state [rows,S,H].
 * - diffusion_sampler: condition rows R = 2 × predicted tokens (one image + twin), width W.
 * - vae_decoder / vae_encoder: 128-channel feature maps at full resolution dominate (the map
 *   counts are measured).
 *
 * Attention scores follow the kernel onnxruntime picks (CUDA_KERNELS, CPU_KERNELS below).
 */
import type { HarmonConfig } from '../../src/model/config.ts';
import {
  imagePassTokens,
  LLM_ATTENTION_CHUNKING,
  PROMPT_TOKENS,
  rowsPerRun,
  rowTokenBudget,
  VAE_IMAGES_PER_RUN,
} from '../../src/model/run-budget.ts';
import { LIMITS } from '../../src/shared/job-inputs.ts';

const F32 = 4;

export { PROMPT_TOKENS };
/** How many score matrices an attention call keeps, by the kernel onnxruntime picks for it. */
export interface AttentionKernels {
  /** The LLM's attention with its bias: copies of [rows, heads, S, T]. */
  llm(seq: number): number;
  /** A MAR block's attention (no bias, no mask): copies of [rows, heads, S, S]. */
  mar(seq: number): number;
}

/**
 * onnxruntime's CUDA MultiHeadAttention (fp32): flash attention is fp16-only; the
 * memory-efficient kernel keeps no score matrix but takes a bias only when S is a multiple of 16,
 * and S = visible + 64 changes at every MAR step, so the LLM is bounded by the unfused kernel,
 * which keeps QKᵀ and its softmax (2 copies). The MAR blocks have no bias: memory-efficient from
 * 256 tokens (onnxruntime's fp32 threshold), unfused below. Read from onnxruntime's sources, not
 * measured (no GPU here).
 */
export const CUDA_KERNELS: AttentionKernels = { llm: () => 2, mar: (seq) => (seq >= 256 ? 0 : 2) };
/** The CPU kernel keeps one score matrix (softmax in place), every call. */
export const CPU_KERNELS: AttentionKernels = { llm: () => 1, mar: () => 1 };
/**
 * Full-resolution (128-channel) feature maps a VAE run holds at its peak, per image: MEASURED,
 * not derived. A ResBlock alone would keep 3 alive (its input for the residual, the normalised
 * and activated map, the conv output), but onnxruntime has no kernel for GroupNormalization-21
 * and expands it into its function body (ReduceMean, Sub, Mul, Sqrt, Div, Add: full-size
 * temporaries), and its arena keeps regions a later, larger request cannot reuse. vae_decoder
 * at 1024², one image, added 3,063 and 3,015 MiB in two runs = 5.9–6.0 maps of 512 MiB
 * (2,041 MiB = 4 maps with the arena off: the live tensors); docs/performance.md,
 * "Activation memory per run".
 */
export const VAE_MAPS_HELD = 6;
/**
 * The same for vae_encoder (describe), MEASURED: one 1024² image added 2,073 MiB = 4 maps with
 * the arena (its full-resolution stage is 2 ResBlocks, the decoder's 3 plus an Upsample).
 */
export const VAE_ENCODER_MAPS_HELD = 4;

/**
 * What the lm session's arena held on the CPU provider over the live tensors lmRunBytes counts,
 * MEASURED on the `small` lm at 1024², 2 rows (the budget's shape), over a job's image passes
 * (the visible count growing to the full grid, then the largest pass), docs/performance.md
 * "Activation memory per run":
 * - with the LLM's attention in query chunks (LLM_ATTENTION_CHUNKING): one pass 947 MiB, 8 passes
 *   1,160 MiB, 64 passes (the default steps) 1,207 MiB = 1.08 × the formula's 1,122;
 * - before, one call over all queries: 64 passes 3,378 MiB = 2.45 × that formula's 1,380. The
 *   arena grows its regions to the next power of two and keeps them, and a freed region cannot
 *   serve a later, larger request; the full score matrices were the regions that kept growing.
 * The deployment figure uses the 64-pass ratio. Jobs of mixed sizes, and the CUDA arena (the
 * same growth rule by default), are not measured.
 */
export const LM_MEASURED_OVER_FORMULA = 1.08;

export interface LmRun {
  rows: number;
  /** New tokens per row (image pass: visible + buffer; prefill: prompt). */
  seq: number;
  /** Cached tokens per row (the prompt in the image pass). */
  past: number;
  /** Whether the MAR encoder/decoder branches run (any `<image>` id / K > 0). */
  mar: boolean;
}

/** Peak bytes of one lm run: what lives across the run + the larger of its LLM and MAR moments. */
export function lmRunBytes(c: HarmonConfig, r: LmRun, kernels: AttentionKernels): number {
  const { hidden: H, intermediate: I, heads, kvHeads, headDim: hd, layers } = c.llm;
  const { rows, seq: S } = r;
  const T = r.past + S;
  const tokens = rows * S;
  // The text cache fed in (past K/V of every layer), the present K/V returned (graph outputs),
  // and the residual stream x, h.
  const pastIn = 2 * layers * rows * kvHeads * r.past * hd * F32;
  const presents = 2 * layers * rows * kvHeads * T * hd * F32 + pastIn;
  const stream = 2 * tokens * H * F32;
  const bias = rows * S * T * F32; // [rows,1,S,T]
  const xEnc = r.mar ? tokens * c.mar.width * F32 : 0; // the encoder's output waits for the decoder
  // Attention: scores per head for one call's queries (a long run's are split into query chunks,
  // each call with its slice of q and of the bias), K and V repeated to the query heads,
  // q / rotated q / output.
  const { above, chunks } = LLM_ATTENTION_CHUNKING;
  const q = S > above ? Math.ceil(S / chunks) : S;
  const slices = S > above ? rows * q * (T + heads * hd) * F32 : 0;
  const attention = kernels.llm(q) * rows * heads * q * T * F32 + slices + 2 * rows * heads * T * hd * F32;
  const attnMoment = attention + 3 * tokens * heads * hd * F32;
  // MLP: gate, silu(gate), up, product; three alive at once.
  const mlpMoment = 3 * tokens * I * F32;
  const llm = bias + xEnc + stream + Math.max(attnMoment, mlpMoment);
  let mar = 0;
  if (r.mar) {
    const { width: D, heads: hm, mlpRatio } = c.mar;
    // qkv [rows,S,3D], q/k/v, attention output; scores [rows,hm,S,S]; MLP fc1 + GELU at m·D.
    const marAttn = kernels.mar(S) * rows * hm * S * S * F32 + 7 * tokens * D * F32;
    const marMlp = 2 * tokens * mlpRatio * D * F32;
    mar = tokens * H * F32 + 2 * tokens * D * F32 + Math.max(marAttn, marMlp);
  }
  return presents + Math.max(llm, mar);
}

/** The image pass at `size` with PROMPT_TOKENS prompts, as many rows as the budget packs. */
export function imagePassRun(c: HarmonConfig, size: number): LmRun {
  const seq = imagePassTokens(c, size);
  return { rows: rowsPerRun(rowTokenBudget(c), PROMPT_TOKENS + seq), seq, past: PROMPT_TOKENS, mar: true };
}

/**
 * The lm runs the pipeline makes, each at its largest shape under the budget; for the image pass,
 * the largest over every image size (one 1024² image and its twin, or many rows of small ones).
 */
export function lmRuns(
  c: HarmonConfig,
  kernels: AttentionKernels = CUDA_KERNELS,
): Record<'imagePass' | 'textPrefill' | 'describePrefill', LmRun> {
  const image = imagePassTokens(c, c.maxImageSize);
  const budget = rowTokenBudget(c);
  const sizes: number[] = [];
  for (let s = LIMITS.sizeMin; s <= c.maxImageSize; s += 16) sizes.push(s);
  const imagePass = sizes
    .map((s) => imagePassRun(c, s))
    .reduce((a, b) => (lmRunBytes(c, b, kernels) > lmRunBytes(c, a, kernels) ? b : a));
  return {
    imagePass,
    textPrefill: { rows: rowsPerRun(budget, PROMPT_TOKENS), seq: PROMPT_TOKENS, past: 0, mar: false },
    // describe: one image's slots and the text in one row (decode steps are one token each).
    describePrefill: { rows: 1, seq: image + PROMPT_TOKENS, past: 0, mar: true },
  };
}

/** One diffusion_sampler run: an image and its twin predicting every token in one MAR step. */
export function samplerRunBytes(c: HarmonConfig): number {
  const rows = 2 * (c.maxImageSize / 16) ** 2;
  const W = c.diffusion.width;
  // c [R,D]; cond, y, silu(y) [R,W]; adaLN [R,3W]; h, LN(h), mlp.0, silu [R,W]: ~9 W per row.
  return rows * (c.mar.width + 9 * W) * F32;
}

/** One vae_decoder run of `images` images at `size` px: full-res maps plus pixels and RGB out. */
export function vaeDecoderRunBytes(c: HarmonConfig, images: number, size: number): number {
  const fullRes = c.vae.ch * c.vae.chMult[0] * size * size * F32;
  return images * (VAE_MAPS_HELD * fullRes + 3 * size * size * (F32 + 1));
}

/** One vae_encoder run (describe): the pixel input plus the full-res maps. */
export function vaeEncoderRunBytes(c: HarmonConfig, size: number): number {
  const fullRes = c.vae.ch * c.vae.chMult[0] * size * size * F32;
  return 3 * size * size * F32 + VAE_ENCODER_MAPS_HELD * fullRes;
}

export interface ActivationBreakdown {
  /** The lm session's peak: the largest of its runs, scaled by LM_MEASURED_OVER_FORMULA. */
  lm: number;
  lmRun: keyof ReturnType<typeof lmRuns>;
  diffusionSampler: number;
  vaeDecoder: number;
  vaeEncoder: number;
  total: number;
}

/** Each session's peak run, summed (each session's arena stays at its own peak). */
export function activationBreakdown(c: HarmonConfig, kernels = CUDA_KERNELS): ActivationBreakdown {
  const runs = Object.entries(lmRuns(c, kernels)).map(([name, r]) => ({
    name: name as keyof ReturnType<typeof lmRuns>,
    bytes: lmRunBytes(c, r, kernels),
  }));
  const top = runs.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  const lm = top.bytes * LM_MEASURED_OVER_FORMULA;
  const diffusionSampler = samplerRunBytes(c);
  const vaeDecoder = vaeDecoderRunBytes(c, VAE_IMAGES_PER_RUN, c.maxImageSize);
  const vaeEncoder = vaeEncoderRunBytes(c, c.maxImageSize);
  return {
    lm,
    lmRun: top.name,
    diffusionSampler,
    vaeDecoder,
    vaeEncoder,
    total: lm + diffusionSampler + vaeDecoder + vaeEncoder,
  };
}
