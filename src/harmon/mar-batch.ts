/**
 * Host-side tensor plumbing of one MAR step (spec §2.5–§2.6): which tokens are visible and which
 * are predicted per image, the gathers that feed mar_encoder, the image-pass mask and positions,
 * and the write-back of sampled latents. Pure functions over typed arrays, so the step-level
 * tests and the pipeline reference test can reuse them.
 *
 * Batch layout (§2.3, batch-plan.ts): the conditional rows of every image first, then the
 * unconditional twins of the guided ones. The functions take per-row lists, so a row's image is
 * whatever the layout says; twins share the permutation, so they share every index set.
 */

/** Ascending copy of `order[from..to)`. */
export function sortedSlice(order: Int32Array, from: number, to: number): Int32Array {
  return order.slice(from, to).sort();
}

export interface StepIndices {
  /** Per image, visible token indices ascending (§2.6 a). */
  visible: Int32Array[];
  /** Per image, indices predicted at this step, ascending (§2.6 h, j). */
  predicted: Int32Array[];
}

/**
 * Masked set after a step = the first `Mnext` permutation entries (§2.5 invariant): visible =
 * order[maskedBefore..N), predicted = order[maskedAfter..maskedBefore), or all masked ones on the last step.
 */
export function stepIndices(
  orders: Int32Array[],
  n: number,
  maskedBefore: number,
  maskedAfter: number,
  last: boolean,
): StepIndices {
  return {
    visible: orders.map((o) => sortedSlice(o, maskedBefore, n)),
    predicted: orders.map((o) => sortedSlice(o, last ? 0 : maskedAfter, maskedBefore)),
  };
}

/** `[B, V]` int64 of per-row indices (every row's list has the same length V). */
export function rowIndices(perRow: Int32Array[]): BigInt64Array {
  const v = perRow[0]?.length ?? 0;
  const out = new BigInt64Array(perRow.length * v);
  perRow.forEach((src, b) => {
    for (let j = 0; j < v; j++) out[b * v + j] = BigInt(src[j]);
  });
  return out;
}

/**
 * Gathers visible latents `[B, V, C]`: row b reads its image's token state `rowTokens[b]` ([N, C],
 * twins share their image's array) at `rowVisible[b]`.
 */
export function gatherVisible(rowTokens: Float32Array[], rowVisible: Int32Array[], c: number): Float32Array {
  const v = rowVisible[0]?.length ?? 0;
  const out = new Float32Array(rowTokens.length * v * c);
  rowTokens.forEach((tokens, b) => {
    const idx = rowVisible[b];
    for (let j = 0; j < v; j++) out.set(tokens.subarray(idx[j] * c, (idx[j] + 1) * c), (b * v + j) * c);
  });
  return out;
}

/**
 * Image-pass attention mask `[B, L + S]` = [text mask ‖ ones] and positions `[B, S]` starting at
 * each row's own text length (§2.4: Lc for conditional rows, Lu for unconditional ones, not L).
 */
export function imagePassFeeds(textMask: Uint8Array, lengths: number[], maxLength: number, s: number) {
  const rows = lengths.length;
  const total = maxLength + s;
  const mask = new BigInt64Array(rows * total); // [B, L+S]
  const positions = new BigInt64Array(rows * s); // [B, S]
  for (let b = 0; b < rows; b++) {
    for (let j = 0; j < maxLength; j++) mask[b * total + j] = BigInt(textMask[b * maxLength + j]);
    for (let j = 0; j < s; j++) {
      mask[b * total + maxLength + j] = 1n;
      positions[b * s + j] = BigInt(lengths[b] + j);
    }
  }
  return { mask, positions };
}

/** Writes sampled latents `[Σ K, C]` (image-major, ascending index) into each image's state `[N, C]`. */
export function writeBack(
  imageTokens: Float32Array[],
  predicted: Int32Array[],
  x0: Float32Array,
  c: number,
): void {
  let r = 0;
  predicted.forEach((idx, img) => {
    for (let j = 0; j < idx.length; j++, r++)
      imageTokens[img].set(x0.subarray(r * c, (r + 1) * c), idx[j] * c);
  });
}

/**
 * diffusion_sampler's row pairing (src/onnx/builders/diffusion-sampler-step.ts). The condition rows
 * are [n conditional rows, state order ‖ unconditional rows]; `twin[i]` is state i's unconditional
 * row counted from n, or −1 for a state without guidance (uncond_row[i] = i means ε = ε_c exactly).
 * So rows of guided and unguided requests share one run (§2.6 j, §3.8).
 */
export function samplerRowsFor(twin: Int32Array): { rowState: BigInt64Array; uncondRow: BigInt64Array } {
  const n = twin.length;
  let extra = 0;
  for (const t of twin) if (t >= 0) extra = Math.max(extra, t + 1);
  const rowState = new BigInt64Array(n + extra);
  for (let i = 0; i < n; i++) {
    rowState[i] = BigInt(i);
    if (twin[i] >= 0) rowState[n + twin[i]] = BigInt(i);
  }
  const uncondRow = BigInt64Array.from(twin, (t, i) => BigInt(t >= 0 ? n + t : i));
  return { rowState, uncondRow };
}

/** One request's pairing: guided, state i pairs with rows i and n + i; unguided, row i alone. */
export function samplerRows(
  n: number,
  guided: boolean,
): { rowState: BigInt64Array; uncondRow: BigInt64Array } {
  return samplerRowsFor(Int32Array.from({ length: n }, (_, i) => (guided ? i : -1)));
}
