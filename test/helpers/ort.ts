/**
 * Test-only bridge to onnxruntime-node for checking single graphs (src/runtime is the only
 * production importer). Creates a CPU session from model bytes or a path and runs it.
 */
import * as ort from 'onnxruntime-node';
import type { HostTensor } from '../../src/runtime/tensors.ts';

export type Feed = {
  dtype: 'float32' | 'int64' | 'int32' | 'uint8';
  dims: number[];
  data: Float32Array | BigInt64Array | Int32Array | Uint8Array;
};

export async function runModel(
  model: Uint8Array | string,
  feeds: Record<string, Feed>,
): Promise<
  Record<string, { dims: readonly number[]; data: Float32Array | BigInt64Array | Uint8Array | Int32Array }>
> {
  const session = await ort.InferenceSession.create(model as Uint8Array, {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: 1,
  });
  try {
    const input: Record<string, ort.Tensor> = {};
    for (const [k, f] of Object.entries(feeds)) input[k] = new ort.Tensor(f.dtype, f.data, f.dims);
    const out = await session.run(input);
    const result: Record<
      string,
      { dims: readonly number[]; data: Float32Array | BigInt64Array | Uint8Array | Int32Array }
    > = {};
    for (const [k, t] of Object.entries(out)) result[k] = { dims: t.dims, data: t.data as Float32Array };
    return result;
  } finally {
    await session.release();
  }
}

/**
 * A `run(graph, feeds)` over one session of `model`, the shape src/ drivers take from ModelRuntime
 * (the graph name is ignored: there is only one). Release it when done.
 */
export async function graphRunner(model: Uint8Array): Promise<{
  run(graph: string, feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>>;
  release(): Promise<void>;
}> {
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  return {
    async run(_graph, feeds) {
      const input: Record<string, ort.Tensor> = {};
      for (const [k, t] of Object.entries(feeds))
        input[k] = new ort.Tensor(t.dtype, t.data, t.dims as number[]);
      const out: Record<string, HostTensor> = {};
      for (const [k, t] of Object.entries(await session.run(input)))
        out[k] = { dtype: t.type as HostTensor['dtype'], dims: t.dims, data: t.data as HostTensor['data'] };
      return out;
    },
    release: () => session.release(),
  };
}

export function f32(dims: number[], data: Float32Array | number[]): Feed {
  return { dtype: 'float32', dims, data: data instanceof Float32Array ? data : Float32Array.from(data) };
}

export function i64(dims: number[], data: number[]): Feed {
  return { dtype: 'int64', dims, data: BigInt64Array.from(data.map((v) => BigInt(v))) };
}

/** Max |a-b| over two equal-length arrays (throws on length mismatch so a shape bug cannot pass). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
  }
  return m;
}

/** Deterministic pseudo-random floats in [-scale, scale) for test inputs (mulberry32). */
export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return out;
}
