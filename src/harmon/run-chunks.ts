/**
 * Row chunks of one batched session run, under the run budget of src/model/run-budget.ts (the
 * one home of the rule: no run holds more token-rows than one image and its CFG twin at the
 * model's largest size; infra sizes GPUs by the same rule). What a row costs here:
 * - the image pass: buffer + N, the MAR decoder's canvas (64 + N tokens per row whatever the step),
 *   which is the largest sequence of the run (the encoder and the LLM see 64 + V ≤ 64 + N − 1);
 * - the text prefill: its padded prompt length L.
 * `vae_decoder` decodes VAE_IMAGES_PER_RUN (one) image per run.
 *
 * Every graph is row-independent, so chunking changes which rows share a run, never a result
 * (test/harmon/generate-batch.test.ts checks chunked == unchunked).
 */
import type { HostTensor } from '../runtime/tensors.ts';

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
  const out = pickRows(data, data.length / t.dims[0], rows, (n) => new Float32Array(n));
  return { dtype: 'float32', dims: [rows.length, ...t.dims.slice(1)], data: out };
}

/** Rows `rows` (in that order) of a typed array of `per` values per row, copied into `make(n)`. */
export function pickRows<T extends Float32Array | Uint8Array>(
  data: T,
  per: number,
  rows: number[],
  make: (length: number) => T,
): T {
  const out = make(rows.length * per);
  rows.forEach((r, i) => {
    out.set(data.subarray(r * per, (r + 1) * per), i * per);
  });
  return out;
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
