/**
 * Shared setup for the MAR graph tests: seeded random MAR + projector weights of the tiny config
 * at scales that keep activations O(1), random index sets, and the fp16 tolerance check.
 */
import type { HarmonConfig } from '../../src/model/config.ts';
import { MemoryWeights } from '../../src/onnx/weights/types.ts';
import { randomArray } from '../helpers/ort.ts';

export interface WeightScales {
  /** Multiplies the listed keys (e.g. to create small-variance LayerNorm inputs). */
  scale?: Record<string, number>;
}

function blockKeys(prefix: string, d: number, hidden: number): [string, number[]][] {
  return [
    [`${prefix}.norm1.weight`, [d]],
    [`${prefix}.norm1.bias`, [d]],
    [`${prefix}.attn.qkv.weight`, [3 * d, d]],
    [`${prefix}.attn.qkv.bias`, [3 * d]],
    [`${prefix}.attn.proj.weight`, [d, d]],
    [`${prefix}.attn.proj.bias`, [d]],
    [`${prefix}.norm2.weight`, [d]],
    [`${prefix}.norm2.bias`, [d]],
    [`${prefix}.mlp.fc1.weight`, [hidden, d]],
    [`${prefix}.mlp.fc1.bias`, [hidden]],
    [`${prefix}.mlp.fc2.weight`, [d, hidden]],
    [`${prefix}.mlp.fc2.bias`, [d]],
  ];
}

/** Every MAR/projector key the encoder and decoder graphs read, with its checkpoint shape. */
export function marWeightShapes(config: HarmonConfig): [string, number[]][] {
  const { width: d, buffer, nativeGrid, tokenChannels, mlpRatio, encoderDepth, decoderDepth } = config.mar;
  const h = config.llm.hidden;
  const rows = buffer + nativeGrid * nativeGrid;
  const out: [string, number[]][] = [
    ['mar.fake_latent', [1, d]],
    ['mar.z_proj.weight', [d, tokenChannels]],
    ['mar.z_proj.bias', [d]],
    ['mar.z_proj_ln.weight', [d]],
    ['mar.z_proj_ln.bias', [d]],
    ['mar.encoder_pos_embed_learned', [1, rows, d]],
    ['mar.encoder_norm.weight', [d]],
    ['mar.encoder_norm.bias', [d]],
    ['mar.decoder_embed.weight', [d, d]],
    ['mar.decoder_embed.bias', [d]],
    ['mar.mask_token', [1, 1, d]],
    ['mar.decoder_pos_embed_learned', [1, rows, d]],
    ['mar.decoder_norm.weight', [d]],
    ['mar.decoder_norm.bias', [d]],
    ['proj_in.0.weight', [h, d]],
    ['proj_in.0.bias', [h]],
    ['proj_in.2.weight', [h, h]],
    ['proj_in.2.bias', [h]],
    ['proj_out.0.weight', [h, h]],
    ['proj_out.0.bias', [h]],
    ['proj_out.2.weight', [d, h]],
    ['proj_out.2.bias', [d]],
  ];
  for (let i = 0; i < encoderDepth; i++) out.push(...blockKeys(`mar.encoder_blocks.${i}`, d, d * mlpRatio));
  for (let i = 0; i < decoderDepth; i++) out.push(...blockKeys(`mar.decoder_blocks.${i}`, d, d * mlpRatio));
  return out;
}

/**
 * Linear weights U(±√(3/fan_in)) (unit output variance), biases ±0.1, norm scales 1 ± 0.1,
 * norm shifts ±0.1, learned vectors/tables ±0.5.
 */
export function marWeights(config: HarmonConfig, seed: number, opts: WeightScales = {}): MemoryWeights {
  const w = new MemoryWeights();
  marWeightShapes(config).forEach(([key, shape], i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const s = seed * 1000 + i;
    let data: Float32Array;
    if (/norm\d?\.weight$|_ln\.weight$/.test(key)) data = randomArray(n, s, 0.1).map((v) => 1 + v);
    else if (key.endsWith('.weight') && shape.length === 2) data = randomArray(n, s, Math.sqrt(3 / shape[1]));
    else if (key.endsWith('.bias')) data = randomArray(n, s, 0.1);
    else data = randomArray(n, s, 0.5);
    const k = opts.scale?.[key];
    w.set(key, shape, k === undefined ? data : data.map((v) => v * k));
  });
  return w;
}

/** B rows of `count` distinct sorted indices from 0…n−1 (a different set per row). */
export function randomIndexSets(batch: number, count: number, n: number, seed: number): number[][] {
  const r = randomArray(batch * n, seed);
  return Array.from({ length: batch }, (_, b) => {
    const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => r[b * n + x] - r[b * n + y]);
    return order.slice(0, count).sort((x, y) => x - y);
  });
}

/** max |a − b| / max |b|: the "relative" measure used for fp16-weight runs. */
export function relativeDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return den === 0 ? num : num / den;
}
