/**
 * Weights in, model directory out: builds every graph of a Harmon model from a WeightSource and
 * writes DIR/<graph>.onnx + <graph>.onnx.data and DIR/manifest.json with sha256 of every file.
 * Used by `harmon convert` (real checkpoints) and `harmon tiny` / `harmon random` (seeded random
 * weights).
 *
 * Memory (why it stays bounded at 1.5B): graphs are built and written one at a time, and a
 * graph's weights are lazy — each is read from the source, transposed / cast to fp16 and written
 * to the external data file one tensor at a time, then dropped. Nothing holds a whole graph's
 * weights, so peak memory is about the largest single tensor (the 151936-row embedding table)
 * plus what the WeightSource itself keeps.
 */
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { HarmonConfig } from '../model/config.ts';
import { sha256File } from '../model/hash-marker.ts';
import type { GraphEntry, GraphName, Manifest } from '../model/manifest.ts';
import { GRAPH_NAMES, MANIFEST_FORMAT, MANIFEST_VERSION } from '../model/manifest.ts';
import { buildDiffusionSampler, samplerStructureFor } from './builders/diffusion-sampler.ts';
import { buildLm } from './builders/lm.ts';
import { buildPosTables } from './builders/pos-tables.ts';
import { buildVaeDecoder } from './builders/vae-decoder.ts';
import { buildVaeEncoder } from './builders/vae-encoder.ts';
import type { WeightDType } from './graph/context.ts';
import type { GraphBuilder } from './graph/graph-builder.ts';
import { saveModel } from './graph/serialize.ts';
import type { WeightSource } from './weights/types.ts';

export interface ExportOptions {
  outDir: string;
  modelId: string;
  weightDType: WeightDType;
  /** True for random weights: every consumer must say the outputs are a demo. */
  demo: boolean;
  /** Where the VAE keys live in `weights` ('vae.' for HF-format and merged checkpoints). */
  vaePrefix?: string;
  imageTokenId: number;
  tokenizerSource: string;
  source?: Record<string, unknown>;
  onProgress?: (done: number, total: number, graph: GraphName) => void;
}

type Builder = (
  config: HarmonConfig,
  weights: WeightSource,
  opts: { weightDType: WeightDType; keyPrefix?: string },
) => GraphBuilder;

/** Graph name -> builder; the VAE graphs read their keys under `vaePrefix`. */
function builders(imageTokenId: number): Record<GraphName, { build: Builder; vae?: boolean }> {
  return {
    lm: { build: (c, w, o) => buildLm(c, w, { ...o, imageTokenId }) },
    // The faster structure for this size (measured; see samplerStructureFor).
    diffusion_sampler: {
      build: (c, w, o) => buildDiffusionSampler(c, w, { ...o, structure: samplerStructureFor(c) }),
    },
    vae_encoder: { build: buildVaeEncoder, vae: true },
    vae_decoder: { build: buildVaeDecoder, vae: true },
    pos_tables: { build: buildPosTables },
  };
}

/** One graph of the model directory, built as the export builds it (also for tests). */
export function buildModelGraph(
  name: GraphName,
  config: HarmonConfig,
  weights: WeightSource,
  opts: Pick<ExportOptions, 'weightDType' | 'vaePrefix' | 'imageTokenId'>,
): GraphBuilder {
  const { build, vae } = builders(opts.imageTokenId)[name];
  return build(config, weights, {
    weightDType: opts.weightDType,
    keyPrefix: vae ? opts.vaePrefix : undefined,
  });
}

export async function exportHarmon(
  config: HarmonConfig,
  weights: WeightSource,
  opts: ExportOptions,
): Promise<Manifest> {
  await mkdir(opts.outDir, { recursive: true });
  const graphs = {} as Record<GraphName, GraphEntry>;
  let done = 0;
  for (const name of GRAPH_NAMES) {
    const g = buildModelGraph(name, config, weights, opts);
    // Always external (any size loads; onnxruntime maps the page-aligned weights from the file).
    const files = await saveModel(g, join(opts.outDir, `${name}.onnx`), {
      externalData: true,
      metadata: { harmon_graph: name, harmon_variant: config.variant },
    });
    const [model, data] = await Promise.all(files.map(fileRef));
    graphs[name] = data ? { ...model, data } : model;
    opts.onProgress?.(++done, GRAPH_NAMES.length, name);
  }
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    formatVersion: MANIFEST_VERSION,
    modelId: opts.modelId,
    variant: config.variant,
    demo: opts.demo,
    dtype: opts.weightDType,
    config,
    graphs,
    tokenizer: { source: opts.tokenizerSource, imageTokenId: opts.imageTokenId },
    source: opts.source,
    createdAt: new Date().toISOString(),
  };
  await writeFile(join(opts.outDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

async function fileRef(path: string) {
  return { file: basename(path), sha256: await sha256File(path), bytes: (await stat(path)).size };
}
