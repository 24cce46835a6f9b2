/**
 * Weights in, model directory out: builds every graph of a Harmon model from a WeightSource and
 * writes DIR/<graph>.onnx (+ .onnx.data for large graphs) and DIR/manifest.json with sha256 of
 * every file. Used by `harmon convert` (real checkpoints) and `harmon tiny` (seeded random
 * weights). Graphs are built and written one at a time so peak memory stays near one graph.
 */
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { HarmonConfig } from '../model/config.ts';
import { sha256File } from '../model/hash-marker.ts';
import type { GraphEntry, GraphName, Manifest } from '../model/manifest.ts';
import { GRAPH_NAMES, MANIFEST_FORMAT, MANIFEST_VERSION } from '../model/manifest.ts';
import { buildDiffusionMlp } from './builders/diffusion-mlp.ts';
import { buildDiffusionSampler, samplerStructureFor } from './builders/diffusion-sampler.ts';
import { buildEmbedTokens } from './builders/embed-tokens.ts';
import { buildLlm, buildLlmImageStep } from './builders/llm.ts';
import { buildMarDecoder } from './builders/mar-decoder.ts';
import { buildMarEncoder } from './builders/mar-encoder.ts';
import { buildMarStep } from './builders/mar-step.ts';
import { buildPosTables } from './builders/pos-tables.ts';
import { buildVaeDecoder } from './builders/vae-decoder.ts';
import { buildVaeEncoder } from './builders/vae-encoder.ts';
import type { WeightDType } from './graph/context.ts';
import type { GraphBuilder } from './graph/graph-builder.ts';
import { saveModel } from './graph/serialize.ts';
import { numelOf } from './weights/dtype.ts';
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
function builders(): Record<GraphName, { build: Builder; vae?: boolean }> {
  return {
    embed_tokens: { build: buildEmbedTokens },
    llm: { build: buildLlm },
    llm_image_step: { build: buildLlmImageStep },
    mar_encoder: { build: buildMarEncoder },
    mar_decoder: { build: buildMarDecoder },
    diffusion_mlp: { build: buildDiffusionMlp },
    // The faster structure for this size (measured; see samplerStructureFor).
    diffusion_sampler: {
      build: (c, w, o) => buildDiffusionSampler(c, w, { ...o, cfg: true, structure: samplerStructureFor(c) }),
    },
    diffusion_sampler_nocfg: {
      build: (c, w, o) =>
        buildDiffusionSampler(c, w, { ...o, cfg: false, structure: samplerStructureFor(c) }),
    },
    vae_encoder: { build: buildVaeEncoder, vae: true },
    vae_decoder: { build: buildVaeDecoder, vae: true },
    pos_tables: { build: buildPosTables },
    mar_step: { build: buildMarStep },
  };
}

/** Large graphs go to external data: protobuf cannot hold more than 2 GiB in one message. */
const EXTERNAL_ABOVE_PARAMS = 200_000_000;

export async function exportHarmon(
  config: HarmonConfig,
  weights: WeightSource,
  opts: ExportOptions,
): Promise<Manifest> {
  await mkdir(opts.outDir, { recursive: true });
  const table = builders();
  const graphs = {} as Record<GraphName, GraphEntry>;
  let done = 0;
  for (const name of GRAPH_NAMES) {
    const { build, vae } = table[name];
    const g = build(config, weights, {
      weightDType: opts.weightDType,
      keyPrefix: vae ? opts.vaePrefix : undefined,
    });
    const params = g.initializers.reduce((n, i) => n + numelOf(i.dims), 0);
    const files = await saveModel(g, join(opts.outDir, `${name}.onnx`), {
      externalData: params > EXTERNAL_ABOVE_PARAMS,
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
