/**
 * Weight bytes per graph, variant and storage dtype, and what one serving process keeps
 * resident: the single source of the memory math in infra/README.md and of the CDK fit check
 * (infra/lib/memory.ts). Counted from the checkpoint's tensor list (harmon-keys.ts) and
 * GRAPH_WEIGHTS below, which says which checkpoint tensors each graph holds as initializers.
 * test/onnx/weight-budget.test.ts compares GRAPH_WEIGHTS with the initializers the exporter
 * really writes, and SERVING_GRAPHS with what HarmonModel.open({ lean }) really loads, so a
 * layout change that forgets this file fails there.
 */
import type { HarmonConfig } from '../model/config.ts';
import { GRAPH_NAMES, type GraphName } from '../model/manifest.ts';
import { expectedHarmonTensors } from './harmon-keys.ts';
import { numelOf } from './weights/dtype.ts';

export type StorageDType = 'float32' | 'float16';

const ENCODER = ['mar.z_proj', 'mar.fake_latent', 'mar.encoder_', 'proj_in.'];
const DECODER = ['mar.decoder_', 'mar.mask_token', 'proj_out.'];
const LLM_BODY = ['llm.model.layers.', 'llm.model.norm.'];
const DIFFUSION = ['mar.diffloss.net.'];

/** Checkpoint-key prefixes whose tensors each graph stores (the layout of an export today). */
export const GRAPH_WEIGHTS: Readonly<Record<GraphName, readonly string[]>> = {
  embed_tokens: ['llm.model.embed_tokens.'],
  llm: ['llm.model.'], // body + the embedding, which is also the tied lm_head
  llm_image_step: LLM_BODY,
  mar_encoder: ENCODER,
  mar_decoder: DECODER,
  diffusion_mlp: DIFFUSION,
  diffusion_sampler: DIFFUSION,
  diffusion_sampler_nocfg: DIFFUSION,
  vae_encoder: ['vae.encoder.', 'vae.quant_conv.'],
  vae_decoder: ['vae.decoder.', 'vae.post_quant_conv.'],
  pos_tables: [
    'mar.encoder_pos_embed_learned',
    'mar.decoder_pos_embed_learned',
    'mar.diffusion_pos_embed_learned',
  ],
  mar_step: [...ENCODER, ...LLM_BODY, ...DECODER],
};

/** Graphs a serving worker loads: with mar_step, the three graphs it fuses stay on disk. */
export const SERVING_GRAPHS: readonly GraphName[] = GRAPH_NAMES.filter(
  (g) => !['llm_image_step', 'mar_decoder', 'diffusion_mlp'].includes(g),
);

/**
 * Whether one process's sessions share a tensor that several of its graphs hold. Today each
 * onnxruntime session owns its initializers, so a tensor in k loaded graphs is resident k times.
 */
export const SESSIONS_SHARE_WEIGHTS = false;

const BYTES: Record<StorageDType, number> = { float32: 4, float16: 2 };

export interface GraphWeights {
  graph: GraphName;
  params: number;
  /** In the model directory, at the storage dtype. */
  storedBytes: number;
  /** Once loaded: fp16 storage is Cast to fp32 in the graph and onnxruntime folds the Cast. */
  loadedBytes: number;
}

export interface WeightBudget {
  variant: string;
  dtype: StorageDType;
  graphs: GraphWeights[];
  /** Every weight some graph uses, counted once (the floor any layout can reach). */
  uniqueParams: number;
  /** The model directory's weight bytes: every graph's storedBytes (what `du` sees, less headers). */
  dirBytes: number;
  /** Weight bytes one serving process holds with SERVING_GRAPHS loaded. */
  residentBytes: number;
  /** The largest loadedBytes of a served graph (the transient host peak while it loads). */
  largestLoadBytes: number;
  largestLoadGraph: GraphName;
}

function keysOf(prefixes: readonly string[], all: Map<string, readonly number[]>): string[] {
  return [...all.keys()].filter((k) => prefixes.some((p) => k.startsWith(p)));
}

/** The checkpoint tensors (HF naming, VAE under `vae.`) that `graph` holds per GRAPH_WEIGHTS. */
export function graphWeightKeys(config: HarmonConfig, graph: GraphName): string[] {
  return keysOf(GRAPH_WEIGHTS[graph], expectedHarmonTensors(config, { includeVae: true, vaePrefix: 'vae.' }));
}

export function weightBudget(
  config: HarmonConfig,
  dtype: StorageDType,
  served: readonly GraphName[] = SERVING_GRAPHS,
): WeightBudget {
  const shapes = expectedHarmonTensors(config, { includeVae: true, vaePrefix: 'vae.' });
  const numel = (keys: Iterable<string>) => {
    let n = 0;
    for (const k of keys) n += numelOf(shapes.get(k) ?? []);
    return n;
  };
  const graphs = GRAPH_NAMES.map((graph): GraphWeights => {
    const params = numel(keysOf(GRAPH_WEIGHTS[graph], shapes));
    return { graph, params, storedBytes: params * BYTES[dtype], loadedBytes: params * 4 };
  });
  const byName = new Map(graphs.map((g) => [g.graph, g]));
  const servedGraphs = served.map((g) => byName.get(g) as GraphWeights);
  const unique = (names: readonly GraphName[]) =>
    numel(new Set(names.flatMap((g) => keysOf(GRAPH_WEIGHTS[g], shapes))));
  const largest = servedGraphs.reduce((a, b) => (b.loadedBytes > a.loadedBytes ? b : a));
  return {
    variant: config.variant,
    dtype,
    graphs,
    uniqueParams: unique(GRAPH_NAMES),
    dirBytes: graphs.reduce((s, g) => s + g.storedBytes, 0),
    residentBytes: SESSIONS_SHARE_WEIGHTS
      ? unique(served) * 4
      : servedGraphs.reduce((s, g) => s + g.loadedBytes, 0),
    largestLoadBytes: largest.loadedBytes + (dtype === 'float16' ? largest.storedBytes : 0),
    largestLoadGraph: largest.graph,
  };
}
