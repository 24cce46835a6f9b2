/**
 * One typed config per model size: the single source of truth for every shape in the graphs,
 * the weight loader's expectations and the manifest. Values from harmon-inference.md §1.2–1.7.
 */
export interface LlmConfig {
  hidden: number; // H
  layers: number;
  heads: number; // query heads
  kvHeads: number; // GQA key/value heads
  headDim: number; // hd; a multiple of 16 so GroupQueryAttention's fused rotary accepts it
  intermediate: number; // MLP width
  vocab: number; // embedding rows (151936 for real Qwen2.5)
  ropeTheta: number;
  rmsEps: number;
}

export interface MarConfig {
  width: number; // D (encoder = decoder)
  encoderDepth: number;
  decoderDepth: number;
  heads: number;
  mlpRatio: number; // MLP hidden = width * mlpRatio
  buffer: number; // 64 "fake latent" buffer slots
  tokenChannels: number; // 16 (VAE embed_dim, patch 1)
  nativeGrid: number; // 16 -> pos-embed tables hold 16x16 grid rows
  lnEps: number; // 1e-6
  classes: number; // class_emb rows (1000), unused at inference but present in checkpoints
}

export interface DiffusionConfig {
  width: number; // W
  depth: number; // ResBlocks
  lnEps: number;
  trainSteps: number; // 1000
  samplingSteps: number; // 100
}

export interface VaeConfig {
  ch: number; // 128
  chMult: number[]; // (1,1,2,2,4): 4 stride-2 levels -> stride 16
  numResBlocks: number; // 2 (decoder uses numResBlocks + 1 per level)
  embedDim: number; // 16
  zChannels: number; // 16 (encoder outputs 2*z for mean + logvar)
  groups: number; // GroupNorm groups, 32
  eps: number; // GroupNorm eps 1e-6
  scale: number; // 0.2325
}

export interface HarmonConfig {
  variant: '0.5b' | '1.5b' | 'tiny' | 'small';
  llm: LlmConfig;
  mar: MarConfig;
  diffusion: DiffusionConfig;
  vae: VaeConfig;
  /** Largest image side the deployment accepts (px, multiple of 16). */
  maxImageSize: number;
}

const QWEN_VOCAB = 151936;

const VAE_KL16: VaeConfig = {
  ch: 128,
  chMult: [1, 1, 2, 2, 4],
  numResBlocks: 2,
  embedDim: 16,
  zChannels: 16,
  groups: 32,
  eps: 1e-6,
  scale: 0.2325,
};

const MAR_COMMON = { mlpRatio: 4, buffer: 64, tokenChannels: 16, nativeGrid: 16, lnEps: 1e-6, classes: 1000 };
const DIFF_COMMON = { lnEps: 1e-6, trainSteps: 1000, samplingSteps: 100 };
const LLM_COMMON = { vocab: QWEN_VOCAB, ropeTheta: 1_000_000, rmsEps: 1e-6 };

export const HARMON_0_5B: HarmonConfig = {
  variant: '0.5b',
  llm: { ...LLM_COMMON, hidden: 896, layers: 24, heads: 14, kvHeads: 2, headDim: 64, intermediate: 4864 },
  mar: { ...MAR_COMMON, width: 768, encoderDepth: 12, decoderDepth: 12, heads: 12 },
  diffusion: { ...DIFF_COMMON, width: 1024, depth: 6 },
  vae: VAE_KL16,
  maxImageSize: 1024,
};

export const HARMON_1_5B: HarmonConfig = {
  variant: '1.5b',
  llm: { ...LLM_COMMON, hidden: 1536, layers: 28, heads: 12, kvHeads: 2, headDim: 128, intermediate: 8960 },
  mar: { ...MAR_COMMON, width: 1280, encoderDepth: 20, decoderDepth: 20, heads: 16 },
  diffusion: { ...DIFF_COMMON, width: 1536, depth: 12 },
  vae: VAE_KL16,
  maxImageSize: 1024,
};

/**
 * Tiny Harmon for tests and the embedded demo: same architecture, small widths. The vocabulary
 * is the real Qwen size so the real tokenizer's ids are valid rows (64 x 151936 fp32 = 39 MB).
 * LLM head size 16 (multiple of 16 for GroupQueryAttention with rotary); 4 query heads, 2 KV heads
 * so GQA grouping is exercised.
 */
export const HARMON_TINY: HarmonConfig = {
  variant: 'tiny',
  llm: { ...LLM_COMMON, hidden: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, intermediate: 128 },
  mar: { ...MAR_COMMON, width: 64, encoderDepth: 2, decoderDepth: 2, heads: 4 },
  diffusion: { ...DIFF_COMMON, width: 64, depth: 2 },
  vae: { ...VAE_KL16, ch: 32, chMult: [1, 1, 2, 2, 4], numResBlocks: 1, groups: 8 },
  maxImageSize: 256,
};

/** "Small" benchmark config: big enough that per-call overhead does not dominate. */
export const HARMON_SMALL: HarmonConfig = {
  variant: 'small',
  llm: { ...LLM_COMMON, hidden: 256, layers: 4, heads: 8, kvHeads: 2, headDim: 32, intermediate: 768 },
  mar: { ...MAR_COMMON, width: 256, encoderDepth: 4, decoderDepth: 4, heads: 8 },
  diffusion: { ...DIFF_COMMON, width: 256, depth: 3 },
  vae: { ...VAE_KL16, ch: 32, chMult: [1, 1, 2, 2, 4], numResBlocks: 1, groups: 8 },
  maxImageSize: 512,
};

export const VARIANTS = {
  '0.5b': HARMON_0_5B,
  '1.5b': HARMON_1_5B,
  tiny: HARMON_TINY,
  small: HARMON_SMALL,
} as const;
export type VariantName = keyof typeof VARIANTS;
