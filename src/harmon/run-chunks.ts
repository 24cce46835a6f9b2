/**
 * Bounded session runs (issue #11: memory on 24 GB GPUs). The activations of one `lm` run grow
 * with rows × tokens per row, so a batch of many jobs, or count = 4 at the largest size, could need
 * several times the memory a single image needs. The rule: no run holds more token-rows than one
 * image and its CFG twin at the model's largest image size,
 *
 *   budget = 2 × ((maxImageSize/16)² + buffer)          token-rows per run
 *
 * and a generate run is split into row chunks under it. What a row costs:
 * - the image pass: buffer + N, the MAR decoder's canvas (64 + N tokens per row whatever the step),
 *   which is the largest sequence of the run (the encoder and the LLM see 64 + V ≤ 64 + N − 1);
 * - the text prefill: its padded prompt length L.
 * So at the largest size a chunk is 2 rows (a count = 4 CFG job takes 4 lm runs per step); at
 * 256² with maxImageSize 1024 it is 26 rows (eight single-image CFG jobs, 16 rows, take one run).
 * `vae_decoder` decodes one image per run: its activations at 1024² are ~1.9 GiB per image.
 *
 * Every graph is row-independent, so chunking changes which rows share a run, never a result
 * (test/harmon/generate-batch.test.ts checks chunked == unchunked).
 */
import type { HarmonConfig } from '../model/config.ts';
import type { HostTensor } from '../runtime/tensors.ts';

/** Token-rows one session run may hold (see above). */
export function rowTokenBudget(config: HarmonConfig): number {
  const n = (config.maxImageSize / 16) ** 2;
  return 2 * (n + config.mar.buffer);
}

/** Rows per run for rows of `tokensPerRow` tokens; at least 1 (one row always runs). */
export function rowsPerRun(budget: number, tokensPerRow: number): number {
  return Math.max(1, Math.floor(budget / Math.max(1, tokensPerRow)));
}

/** [start, end) row ranges of at most `perRun` rows covering 0..rows−1 in order. */
export function rowChunks(rows: number, perRun: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let s = 0; s < rows; s += perRun) out.push([s, Math.min(rows, s + perRun)]);
  return out;
}

/** Rows [start, end) of a float32 tensor with the batch first: a view, no copy. */
export function sliceRows(t: HostTensor, start: number, end: number): HostTensor & { data: Float32Array } {
  const data = t.data as Float32Array;
  const per = data.length / t.dims[0];
  return {
    dtype: 'float32',
    dims: [end - start, ...t.dims.slice(1)],
    data: data.subarray(start * per, end * per),
  };
}

/** Concatenation along the batch axis (chunk outputs back into one tensor). */
export function concatRows(parts: HostTensor[]): HostTensor & { data: Float32Array } {
  if (parts.length === 1) return parts[0] as HostTensor & { data: Float32Array };
  const data = new Float32Array(parts.reduce((a, p) => a + p.data.length, 0));
  let off = 0;
  for (const p of parts) {
    data.set(p.data as Float32Array, off);
    off += p.data.length;
  }
  const rows = parts.reduce((a, p) => a + p.dims[0], 0);
  return { dtype: 'float32', dims: [rows, ...parts[0].dims.slice(1)], data };
}

/** The listed rows of a float32 tensor with the batch first, in the given order (a copy). */
export function takeRows(t: HostTensor, rows: number[]): HostTensor & { data: Float32Array } {
  const data = t.data as Float32Array;
  const per = data.length / t.dims[0];
  const out = new Float32Array(rows.length * per);
  rows.forEach((r, i) => {
    out.set(data.subarray(r * per, (r + 1) * per), i * per);
  });
  return { dtype: 'float32', dims: [rows.length, ...t.dims.slice(1)], data: out };
}

/** Slices rows [start, end) out of a `[B, ...]` typed array of `per` values per row. */
export function rowView<T extends { subarray(a: number, b: number): T; length: number }>(
  data: T,
  rows: number,
  start: number,
  end: number,
): T {
  const per = data.length / rows;
  return data.subarray(start * per, end * per);
}
