/** Seeded random KL-16 VAE weights for the tiny config, scaled so activations stay O(1). */

import type { VaeConfig } from '../../src/model/config.ts';
import { vaeShapes } from '../../src/onnx/builders/vae-weights.ts';
import { MemoryWeights } from '../../src/onnx/weights/types.ts';
import { randomArray } from '../helpers/ort.ts';

export function randomVaeWeights(vae: VaeConfig, seed = 1, prefix = ''): MemoryWeights {
  const w = new MemoryWeights();
  let s = seed * 1000;
  for (const [key, shape] of vaeShapes(vae)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const r = randomArray(n, s++);
    const isNorm = /norm(1|2|_out)?\.weight$/.test(key);
    let data: Float32Array;
    if (shape.length === 4) {
      // Conv: U(-1,1)/sqrt(fan_in) keeps each conv's output variance ~1/3 of its input's.
      const k = 1 / Math.sqrt(shape[1] * shape[2] * shape[3]);
      data = r.map((v) => v * k);
    } else if (isNorm) data = r.map((v) => 1 + 0.1 * v);
    else data = r.map((v) => 0.1 * v);
    w.set(prefix + key, shape, data);
  }
  return w;
}

/** A copy of `src` with some tensors replaced. */
export function withOverrides(src: MemoryWeights, over: Record<string, Float32Array>): MemoryWeights {
  const out = new MemoryWeights();
  for (const name of src.names()) {
    const e = src.get(name);
    if (e) out.set(name, e.shape, over[name] ?? e.read());
  }
  return out;
}

/** max|a-b| / max|b|. */
export function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}
