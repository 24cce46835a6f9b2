/**
 * The model directory format shared by `harmon convert` / `harmon tiny` (writers) and the
 * runtime (reader): DIR/manifest.json plus one .onnx file per graph (and `.onnx.data` external
 * weights for large graphs). Parsed with zod so a hand-edited or truncated manifest fails with a
 * message naming the bad field instead of a crash deep inside the pipeline.
 */
import { z } from 'zod';
import type { HarmonConfig } from './config.ts';

export const MANIFEST_FORMAT = 'harmon-onnx';
export const MANIFEST_VERSION = 1;

/** Graphs every model directory holds, with the spec section each implements. */
export const REQUIRED_GRAPHS = [
  'embed_tokens', // §6.3
  'llm', // §6.5 prefill + decode with KV cache
  'llm_image_step', // §6.6 reads the text cache, no present outputs
  'mar_encoder', // §6.4
  'mar_decoder', // §6.7
  'diffusion_mlp', // §6.8 one network evaluation (per-step driver, benchmarks)
  'diffusion_sampler', // §6.9 fused 100-step loop with CFG
  'diffusion_sampler_nocfg', // §6.9 variant for cfg = 1
  'vae_encoder', // §6.1
  'vae_decoder', // §6.2
  'pos_tables', // the learned 16x16 pos-embed tables, interpolated per resolution in TS (§2.10)
] as const;

/**
 * Graphs added after format version 1 shipped: written by every export, but a directory made
 * before them still loads (the pipeline falls back to the graphs they fuse), so no version bump.
 */
export const OPTIONAL_GRAPHS = [
  'mar_step', // §6.10 mar_encoder → llm_image_step → mar_decoder fused, one run per MAR step
] as const;

/** Every graph an export writes: the required ones, then the optional ones. */
export const GRAPH_NAMES = [...REQUIRED_GRAPHS, ...OPTIONAL_GRAPHS] as const;
export type GraphName = (typeof GRAPH_NAMES)[number];
export type OptionalGraphName = (typeof OPTIONAL_GRAPHS)[number];
export type RequiredGraphName = (typeof REQUIRED_GRAPHS)[number];

const fileRef = z.object({
  file: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int().nonnegative(),
});

const graphEntry = fileRef.extend({ data: fileRef.optional() });

export const manifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  formatVersion: z.literal(MANIFEST_VERSION),
  modelId: z.string().min(1),
  variant: z.enum(['0.5b', '1.5b', 'tiny', 'small']),
  /** True for seeded random weights: outputs are noise, and every surface must say so. */
  demo: z.boolean(),
  dtype: z.enum(['float32', 'float16']),
  config: z.custom<HarmonConfig>((v) => typeof v === 'object' && v !== null && 'llm' in v && 'mar' in v),
  graphs: z.object({
    ...(Object.fromEntries(REQUIRED_GRAPHS.map((n) => [n, graphEntry])) as Record<
      RequiredGraphName,
      typeof graphEntry
    >),
    ...(Object.fromEntries(OPTIONAL_GRAPHS.map((n) => [n, graphEntry.optional()])) as Record<
      OptionalGraphName,
      z.ZodOptional<typeof graphEntry>
    >),
  }),
  tokenizer: z.object({ source: z.string(), imageTokenId: z.number().int() }),
  source: z.record(z.string(), z.unknown()).optional(),
  createdAt: z.string(),
});

export type Manifest = z.infer<typeof manifestSchema>;
export type GraphEntry = z.infer<typeof graphEntry>;
