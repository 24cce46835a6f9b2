/**
 * How much one session run may hold: the single home of the rule that sizes the GPU a model
 * needs (infra/lib/memory.ts) and the row chunks the pipeline runs (src/harmon/run-chunks.ts has
 * the same rule and signatures, so it can import these).
 *
 * Why a rule at all: onnxruntime keeps each session's arena at the largest run it has seen, so
 * GPU memory is set by the biggest single run, not by the request. Running the 4 images of a
 * 1024² request with CFG as one batch of 8 rows made Harmon-1.5B need ~24 GiB and ruled out the
 * 24 GB L4/A10G. Capped at one image and its CFG twin at the model's largest size, a run's
 * activations no longer grow with the image count, and the extra runs cost little because a run
 * of 2 × 4160 rows already fills a GPU.
 */
import type { HarmonConfig } from './config.ts';

/** Tokens of one image at `size` px in the image pass: the grid plus MAR's buffer slots. */
export function imagePassTokens(c: HarmonConfig, size: number): number {
  return (size / 16) ** 2 + c.mar.buffer;
}

/**
 * Text tokens of a row's prompt that the budget makes room for (the chat template around a
 * prompt of ~1,500 characters). A longer prompt still runs, in fewer rows per run.
 */
export const PROMPT_TOKENS = 512;

/**
 * The most row-tokens one `lm` run may carry, counting for each row its cached text as well as
 * its new tokens: rows × (cached + new) ≤ budget. In the image pass a row is its text cache and
 * its canvas (visible + buffer tokens, the whole grid at most); in text prefill, its prompt. The
 * cache counts because every run takes it as input and returns it grown (the present K/V of every
 * layer): without it, small images would pack so many rows (104 rows of 64² with 512-token
 * prompts) that their caches outweighed the 1024² pass this budget is sized for. One image and
 * its CFG twin at `maxImageSize` with a PROMPT_TOKENS prompt: 2 × (4160 + 512) at 1024².
 */
export function rowTokenBudget(c: HarmonConfig): number {
  return 2 * (imagePassTokens(c, c.maxImageSize) + PROMPT_TOKENS);
}

/** The most rows of `tokensPerRow` tokens one run of `budget` row-tokens takes (at least 1). */
export function rowsPerRun(budget: number, tokensPerRow: number): number {
  return Math.max(1, Math.floor(budget / Math.max(1, tokensPerRow)));
}

/**
 * Images one `vae_decoder` run decodes. The KL-16 decoder's full-resolution feature maps
 * (128 channels × H × W fp32, 0.5 GiB each at 1024²) dominate its memory and scale with the
 * batch; decoding one image per run costs no speed (a 1024² image already fills the device).
 */
export const VAE_IMAGES_PER_RUN = 1;

/** How the LLM's attention splits a long run's queries (src/onnx/graph/attention-ops.ts). */
export interface AttentionChunking {
  /** Runs with more new tokens than this are split; shorter ones (decode, text) run whole. */
  above: number;
  /** Query chunks of a split run: ⌈S / chunks⌉ queries each. */
  chunks: number;
}

/**
 * The LLM attention's score matrix is per head, [rows, heads, S, P + S], and the image pass of a
 * 1024² image has S = 4160: the largest single tensor of any run (1.74 GiB per copy at 1.5B, two
 * copies on CUDA's unfused kernel, which the additive bias forces). Run in 4 query chunks it is
 * a quarter of that, for the same math row by row (each query's softmax is over its own keys).
 * Runs of up to 1024 new tokens (text, decode, images up to 496²) stay one call.
 */
export const LLM_ATTENTION_CHUNKING: AttentionChunking = { above: 1024, chunks: 4 };
