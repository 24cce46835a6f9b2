/**
 * The only module that imports onnxruntime-node. Creates one InferenceSession per graph of a
 * model directory (once), validates feeds against the graph's declared inputs before `run` (a
 * missing or mistyped input names itself instead of surfacing as an opaque native error), and
 * disposes every session on close.
 *
 * `session.run` is a synchronous native call that blocks the event loop for the whole inference;
 * callers must run this module inside a worker thread (see src/harmon/engine.ts), never on the
 * API's event loop.
 */
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { GRAPH_NAMES, type GraphName, type Manifest } from '../model/manifest.ts';
import { type FileCheck, readManifest, verifyModelDir } from '../model/model-dir.ts';
import { AppError } from '../shared/errors.ts';
import { selectExecutionProviders } from './providers.ts';
import { elementCount, type HostTensor } from './tensors.ts';

export interface RuntimeOptions {
  /**
   * Execution providers in order of preference, e.g. ['cuda', 'cpu'] (default ['cpu']). One that
   * cannot run here fails the open with EXECUTION_PROVIDER_UNAVAILABLE (providers.ts).
   */
  executionProviders?: string[];
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  intraOpNumThreads?: number;
  /** Verify sha256 of every file at load (default true); files with a current marker are not re-read. */
  verifyHashes?: boolean;
  /** Load only these graphs (default: every graph the manifest lists). */
  graphs?: readonly GraphName[];
}

export interface RunStats {
  runs: number;
  msByGraph: Record<string, number>;
  runsByGraph: Record<string, number>;
}

/** What opening the model cost: the cold start a worker pays before its first job. */
export interface LoadStats {
  /** Checking the files (stat, marker or full sha256; see verifyModelDir). */
  verifyMs: number;
  files: FileCheck[];
  /** InferenceSession creation per graph (parse, optimise, place weights on the device). */
  msByGraph: Record<string, number>;
  totalMs: number;
}

export class ModelRuntime {
  readonly stats: RunStats = { runs: 0, msByGraph: {}, runsByGraph: {} };

  private constructor(
    readonly dir: string,
    readonly manifest: Manifest,
    readonly executionProvider: string,
    private readonly sessions: Map<GraphName, ort.InferenceSession>,
    readonly loadStats: LoadStats,
  ) {}

  static async open(dir: string, opts: RuntimeOptions = {}): Promise<ModelRuntime> {
    const t0 = performance.now();
    // First, before any gigabyte is read: a worker without its requested GPU must not start.
    const providers = await selectExecutionProviders(opts.executionProviders ?? ['cpu']);
    const manifest = await readManifest(dir);
    const tVerify = performance.now();
    const files = await verifyModelDir(dir, manifest, { hashes: opts.verifyHashes ?? true });
    const verifyMs = performance.now() - tVerify;
    const wanted = opts.graphs ?? GRAPH_NAMES;
    const sessions = new Map<GraphName, ort.InferenceSession>();
    const msByGraph: Record<string, number> = {};
    try {
      for (const name of wanted) {
        const entry = manifest.graphs[name];
        if (!entry)
          throw new AppError(
            'MODEL_INVALID',
            `model directory ${dir} has no graph ${name}; re-export it with harmon convert/tiny`,
          );
        const path = join(dir, entry.file);
        const tGraph = performance.now();
        try {
          sessions.set(
            name,
            await ort.InferenceSession.create(path, {
              executionProviders: providers,
              graphOptimizationLevel: opts.graphOptimizationLevel ?? 'all',
              ...(opts.intraOpNumThreads ? { intraOpNumThreads: opts.intraOpNumThreads } : {}),
            }),
          );
        } catch (e) {
          throw new AppError(
            'MODEL_LOAD_FAILED',
            `graph ${name} (${entry.file}) failed to load: ${(e as Error).message}`,
            {
              cause: e,
            },
          );
        }
        msByGraph[name] = performance.now() - tGraph;
      }
    } catch (e) {
      await Promise.all([...sessions.values()].map((s) => s.release()));
      throw e;
    }
    const loadStats = { verifyMs, files, msByGraph, totalMs: performance.now() - t0 };
    return new ModelRuntime(dir, manifest, providers[0], sessions, loadStats);
  }

  has(graph: GraphName): boolean {
    return this.sessions.has(graph);
  }

  inputNames(graph: GraphName): readonly string[] {
    return this.session(graph).inputNames;
  }

  async run(
    graph: GraphName,
    feeds: Record<string, HostTensor>,
    outputs?: string[],
  ): Promise<Record<string, HostTensor>> {
    const session = this.session(graph);
    validateFeeds(graph, session, feeds);
    const t0 = performance.now();
    const out = await runSession(session, feeds, outputs);
    const ms = performance.now() - t0;
    this.stats.runs++;
    this.stats.msByGraph[graph] = (this.stats.msByGraph[graph] ?? 0) + ms;
    this.stats.runsByGraph[graph] = (this.stats.runsByGraph[graph] ?? 0) + 1;
    return out;
  }

  async close(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(all.map((s) => s.release()));
  }

  private session(graph: GraphName): ort.InferenceSession {
    const s = this.sessions.get(graph);
    if (!s) throw new AppError('MODEL_INVALID', `graph ${graph} is not loaded`);
    return s;
  }
}

async function runSession(
  session: ort.InferenceSession,
  feeds: Record<string, HostTensor>,
  outputs?: string[],
): Promise<Record<string, HostTensor>> {
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds))
    ortFeeds[name] = new ort.Tensor(t.dtype, t.data, t.dims as number[]);
  const result = outputs ? await session.run(ortFeeds, outputs) : await session.run(ortFeeds);
  const out: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(result)) {
    out[name] = { dtype: t.type as HostTensor['dtype'], dims: t.dims, data: t.data as HostTensor['data'] };
  }
  return out;
}

/** A session over one graph that is not part of a model directory (built in memory). */
export interface GraphSession {
  run(feeds: Record<string, HostTensor>, outputs?: string[]): Promise<Record<string, HostTensor>>;
  release(): Promise<void>;
}

/**
 * Opens an in-memory graph on the CPU provider: the per-step diffusion_mlp of the sampler bench,
 * which no model directory ships (its weights are the diffusion_sampler's).
 */
export async function openGraphSession(
  name: string,
  bytes: Uint8Array,
  opts: Pick<RuntimeOptions, 'intraOpNumThreads'> = {},
): Promise<GraphSession> {
  const session = await ort.InferenceSession.create(bytes, {
    graphOptimizationLevel: 'all',
    ...(opts.intraOpNumThreads ? { intraOpNumThreads: opts.intraOpNumThreads } : {}),
  });
  return {
    run: (feeds, outputs) => {
      validateFeeds(name, session, feeds);
      return runSession(session, feeds, outputs);
    },
    release: () => session.release(),
  };
}

/** Checks names, dtypes, ranks and fixed dims of the feeds against the graph's input metadata. */
function validateFeeds(
  graph: string,
  session: ort.InferenceSession,
  feeds: Record<string, HostTensor>,
): void {
  const problems: string[] = [];
  const declared = new Set(session.inputNames);
  for (const name of session.inputNames) if (!(name in feeds)) problems.push(`missing input ${name}`);
  for (const name of Object.keys(feeds)) if (!declared.has(name)) problems.push(`unexpected input ${name}`);
  for (const meta of session.inputMetadata) {
    const feed = feeds[meta.name];
    if (!feed || !meta.isTensor) continue;
    if (meta.type !== feed.dtype) problems.push(`${meta.name} must be ${meta.type}, got ${feed.dtype}`);
    if (meta.shape.length !== feed.dims.length) {
      problems.push(`${meta.name} must have rank ${meta.shape.length}, got [${feed.dims}]`);
    } else {
      meta.shape.forEach((d, i) => {
        if (typeof d === 'number' && d >= 0 && d !== feed.dims[i])
          problems.push(`${meta.name} dim ${i} must be ${d}, got ${feed.dims[i]}`);
      });
    }
    if (elementCount(feed.dims) !== feed.data.length) {
      problems.push(`${meta.name} has ${feed.data.length} values for dims [${feed.dims}]`);
    }
  }
  if (problems.length)
    throw new AppError('INTERNAL', `bad feeds for graph ${graph}: ${problems.join('; ')}`, {
      details: { problems },
    });
}
