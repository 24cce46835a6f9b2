/**
 * Shared setup for the LLM graph tests: seeded random Qwen2 weights at scales that keep
 * activations O(1) and attention patterns far from uniform (so RoPE layout, head grouping and
 * masking mistakes show up as large differences), plus small feed helpers.
 */

import { HARMON_TINY, type HarmonConfig } from '../../src/model/config.ts';
import { llmWeightShapes } from '../../src/onnx/builders/llm.ts';
import { MemoryWeights } from '../../src/onnx/weights/types.ts';
import { randomArray } from '../helpers/ort.ts';

/** HARMON_TINY with a 512-row vocabulary: same LLM body, fast logits and model bytes. */
export const TINY_SMALL_VOCAB: HarmonConfig = { ...HARMON_TINY, llm: { ...HARMON_TINY.llm, vocab: 512 } };

export function randomLlmWeights(config: HarmonConfig, seed = 1): MemoryWeights {
  const w = new MemoryWeights();
  llmWeightShapes(config.llm).forEach(([name, shape], i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const s = seed * 1000 + i;
    let data: Float32Array;
    if (name.endsWith('layernorm.weight') || name.endsWith('norm.weight'))
      data = randomArray(n, s, 0.1).map((v) => 1 + v);
    else if (name.endsWith('.bias')) data = randomArray(n, s, 0.5);
    else if (name.endsWith('embed_tokens.weight')) data = randomArray(n, s, 1);
    else data = randomArray(n, s, 2 / Math.sqrt(shape[1])); // Linear [out,in]: U(±2/√in)
    w.set(name, shape, data);
  });
  return w;
}

/** Row-major int rows -> flat array. */
export const flat = (rows: number[][]): number[] => rows.flat();

export const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

/** Max |a−b| over the slice [from, from+len) of two arrays. */
export function maxAbsDiffSlice(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  from: number,
  len: number,
  bFrom = from,
): number {
  let m = 0;
  for (let i = 0; i < len; i++) {
    const d = Math.abs(a[from + i] - b[bFrom + i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
  }
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/**
 * Asserts max |a−b| ≤ tol (or > tol when `far`), with the measured value in the message. An
 * explicit message also keeps failures fast: node's assert otherwise re-parses the (one-line,
 * tsx-transformed) source to build one.
 */
export function assertDiff(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  tol: number,
  what: string,
  far = false,
): void {
  if (a.length !== b.length) throw new Error(`${what}: length ${a.length} vs ${b.length}`);
  const d = maxAbsDiffSlice(a, b, 0, a.length);
  const ok = far ? d > tol : d <= tol;
  if (!ok) throw new Error(`${what}: max-abs diff ${d} ${far ? '≤' : '>'} ${tol}`);
}
