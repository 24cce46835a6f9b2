/**
 * Host-side tensor plumbing of one MAR step (spec §2.5–§2.6): which tokens are visible and which
 * are predicted per image, the gathers that feed mar_encoder, the image-pass mask and positions,
 * and the write-back of sampled latents. Pure functions over typed arrays, so the step-level
 * tests and the pipeline reference test can reuse them.
 *
 * Batch layout (§2.3): rows 0..G−1 conditional, rows G..2G−1 their unconditional twins (with CFG).
 * Row b belongs to image b mod G; twins share the permutation, so they share every index set.
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

/** `[B, V]` int64 of per-row indices, row b taken from image b mod G. */
export function rowIndices(perImage: Int32Array[], rows: number): BigInt64Array {
  const g = perImage.length;
  const v = perImage[0].length;
  const out = new BigInt64Array(rows * v);
  for (let b = 0; b < rows; b++) {
    const src = perImage[b % g];
    for (let j = 0; j < v; j++) out[b * v + j] = BigInt(src[j]);
  }
  return out;
}

/** Gathers visible latents `[B, V, C]` from the per-image token state `[G, N, C]`. */
export function gatherVisible(
  tokens: Float32Array,
  n: number,
  c: number,
  visible: Int32Array[],
  rows: number,
): Float32Array {
  const g = visible.length;
  const v = visible[0].length;
  const out = new Float32Array(rows * v * c);
  for (let b = 0; b < rows; b++) {
    const img = b % g;
    const idx = visible[img];
    for (let j = 0; j < v; j++) {
      const src = (img * n + idx[j]) * c;
      out.set(tokens.subarray(src, src + c), (b * v + j) * c);
    }
  }
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

/** Writes sampled latents `[G·K, C]` (image-major, ascending index) into the token state `[G, N, C]`. */
export function writeBack(
  tokens: Float32Array,
  n: number,
  c: number,
  predicted: Int32Array[],
  x0: Float32Array,
): void {
  let r = 0;
  predicted.forEach((idx, img) => {
    for (let j = 0; j < idx.length; j++, r++) {
      tokens.set(x0.subarray(r * c, (r + 1) * c), (img * n + idx[j]) * c);
    }
  });
}

/**
 * diffusion_sampler's row pairing for n state rows (src/onnx/builders/diffusion-sampler-step.ts):
 * guided, the condition rows are [conditional ‖ unconditional] (z flattened, §2.6 j) and state i
 * pairs with rows i and n + i; unguided, row i alone (uncond_row[i] = i means ε = ε_c exactly).
 */
export function samplerRows(
  n: number,
  guided: boolean,
): { rowState: BigInt64Array; uncondRow: BigInt64Array } {
  const rowState = new BigInt64Array(guided ? 2 * n : n);
  for (let r = 0; r < rowState.length; r++) rowState[r] = BigInt(r % n);
  const uncondRow = BigInt64Array.from({ length: n }, (_, i) => BigInt(guided ? n + i : i));
  return { rowState, uncondRow };
}
