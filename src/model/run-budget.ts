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
 * The most row-tokens (rows × sequence tokens) one `lm` run may carry, in the image pass
 * (sequence = visible + buffer tokens) and in text prefill (sequence = prompt tokens): one image
 * and its CFG twin at `maxImageSize`. At 1024² that is 2 rows of 4160 tokens; smaller images
 * share a run (up to 26 rows of 320 tokens at 256² with a 1024² model: a whole 4-image request
 * with CFG stays one run).
 */
export function rowTokenBudget(c: HarmonConfig): number {
  return 2 * imagePassTokens(c, c.maxImageSize);
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
