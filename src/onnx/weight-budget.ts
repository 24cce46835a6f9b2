/**
 * Weight bytes per graph, variant and storage dtype, and what one serving process keeps
 * resident: the single source of the memory math in infra/README.md and of the CDK fit check
 * (infra/lib/memory.ts). Counted from the checkpoint's tensor list (harmon-keys.ts) and
 * GRAPH_WEIGHTS below, which says which checkpoint tensors each graph holds as initializers.
 * test/onnx/weight-budget.test.ts compares GRAPH_WEIGHTS with the initializers the exporter
 * really writes, and SERVING_GRAPHS with what HarmonModel.open really loads, so a layout change
 * that forgets this file fails there.
 */
import type { HarmonConfig } from '../model/config.ts';
import { GRAPH_NAMES, type GraphName } from '../model/manifest.ts';
import { expectedHarmonTensors } from './harmon-keys.ts';
import { numelOf } from './weights/dtype.ts';

export type StorageDType = 'float32' | 'float16';

const ENCODER = ['mar.z_proj', 'mar.fake_latent', 'mar.encoder_', 'proj_in.'];
const DECODER = ['mar.decoder_', 'mar.mask_token', 'proj_out.'];
const DIFFUSION = ['mar.diffloss.net.'];

/**
 * Checkpoint-key prefixes whose tensors each graph stores (model format 2: each tensor in one
 * graph). `llm.model.` includes the embedding, which is also the tied lm_head.
 */
export const GRAPH_WEIGHTS: Readonly<Record<GraphName, readonly string[]>> = {
  lm: ['llm.model.', ...ENCODER, ...DECODER],
  diffusion_sampler: DIFFUSION,
  vae_encoder: ['vae.encoder.', 'vae.quant_conv.'],
  vae_decoder: ['vae.decoder.', 'vae.post_quant_conv.'],
  pos_tables: [
    'mar.encoder_pos_embed_learned',
    'mar.decoder_pos_embed_learned',
    'mar.diffusion_pos_embed_learned',
  ],
};

/**
 * The two learned tables stored in two graphs, split by rows: the 64 buffer rows in lm, the
 * 16×16 grid rows in pos_tables. Their bytes are counted where they are, never twice.
 */
const SPLIT_TABLES = new Set(['mar.encoder_pos_embed_learned', 'mar.decoder_pos_embed_learned']);

/** Graphs a serving worker loads: all of them (no graph duplicates another's weights). */
export const SERVING_GRAPHS: readonly GraphName[] = GRAPH_NAMES;

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
  const { buffer, width } = config.mar;
  /** Elements of `key` that `graph` stores (a split table's rows, else the whole tensor). */
  const heldBy = (graph: GraphName, key: string) => {
    const all = numelOf(shapes.get(key) ?? []);
    if (!SPLIT_TABLES.has(key)) return all;
    return graph === 'lm' ? buffer * width : all - buffer * width;
  };
  const graphs = GRAPH_NAMES.map((graph): GraphWeights => {
    const params = keysOf(GRAPH_WEIGHTS[graph], shapes).reduce((n, k) => n + heldBy(graph, k), 0);
    return { graph, params, storedBytes: params * BYTES[dtype], loadedBytes: params * 4 };
  });
  const byName = new Map(graphs.map((g) => [g.graph, g]));
  const servedGraphs = served.map((g) => byName.get(g) as GraphWeights);
  const largest = servedGraphs.reduce((a, b) => (b.loadedBytes > a.loadedBytes ? b : a));
  return {
    variant: config.variant,
    dtype,
    graphs,
    uniqueParams: numel(new Set(GRAPH_NAMES.flatMap((g) => keysOf(GRAPH_WEIGHTS[g], shapes)))),
    dirBytes: graphs.reduce((s, g) => s + g.storedBytes, 0),
    // Each session owns its initializers, and no tensor is in two graphs: the served graphs' sum.
    residentBytes: servedGraphs.reduce((s, g) => s + g.loadedBytes, 0),
    largestLoadBytes: largest.loadedBytes + (dtype === 'float16' ? largest.storedBytes : 0),
    largestLoadGraph: largest.graph,
  };
}
