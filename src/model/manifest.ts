/**
 * The model directory format shared by `harmon convert` / `harmon tiny` (writers) and the
 * runtime (reader): DIR/manifest.json plus one .onnx file per graph and its `.onnx.data` weights. Parsed with zod so a hand-edited or truncated manifest fails with a
 * message naming the bad field instead of a crash deep inside the pipeline.
 */
import { z } from 'zod';
import type { HarmonConfig } from './config.ts';

export const MANIFEST_FORMAT = 'harmon-onnx';
/**
 * 2: one `lm` graph replaces embed_tokens, llm, llm_image_step, mar_encoder, mar_decoder and
 * mar_step; one diffusion_sampler serves guided and unguided rows; weights in page-aligned
 * external data. Version 1 directories held the LLM weights up to three times and are refused
 * with a message to re-export (model-dir.ts), not loaded: nothing reads the old graph set.
 */
export const MANIFEST_VERSION = 2;

/** Every graph a model directory holds (each weight of the checkpoint in exactly one of them). */
export const GRAPH_NAMES = [
  'lm', // embed_tokens + Qwen2 with KV cache + MAR encoder/decoder (§6.3–§6.7, src/onnx/builders/lm.ts)
  'diffusion_sampler', // §6.9 fused 100-step loop, guided and unguided rows in one graph
  'vae_encoder', // §6.1
  'vae_decoder', // §6.2
  'pos_tables', // the learned 16x16 pos-embed tables, interpolated per resolution in TS (§2.10)
] as const;
export type GraphName = (typeof GRAPH_NAMES)[number];

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
  graphs: z.object(
    Object.fromEntries(GRAPH_NAMES.map((n) => [n, graphEntry])) as Record<GraphName, typeof graphEntry>,
  ),
  tokenizer: z.object({ source: z.string(), imageTokenId: z.number().int() }),
  source: z.record(z.string(), z.unknown()).optional(),
  createdAt: z.string(),
});

export type Manifest = z.infer<typeof manifestSchema>;
export type GraphEntry = z.infer<typeof graphEntry>;
