/**
 * Seeded random weights for every expected Harmon tensor: what `harmon tiny` and the tests
 * build models from. Lazy: each tensor is generated when read and not kept, so exporting a
 * random 1.5B model needs the memory of one tensor, not of the model. Each tensor gets its own stream seeded from (seed, name), so adding a key
 * never changes the values of the others. Scales follow PyTorch's defaults so activations stay
 * O(1) through the tiny model: matrices U(±1/√fan_in), embeddings and learned position tables
 * std 0.02, norm weights 1 ± 0.05, biases ±0.02.
 */
import type { HarmonConfig } from '../../model/config.ts';
import { expectedHarmonTensors, type Shape } from '../harmon-keys.ts';
import { numelOf } from './dtype.ts';
import { MemoryWeights } from './types.ts';

export interface RandomWeightsOptions {
  /** Include VAE keys (under `vae.`, the HF-format naming). Default true: tiny needs every graph. */
  includeVae?: boolean;
  vaePrefix?: string;
  /** Also emit `llm.lm_head.weight` as a copy of the embedding. Default false (HF drops the tied copy). */
  includeLmHead?: boolean;
}

/** FNV-1a: a stable 32-bit hash of a tensor name. */
function hashName(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Fills `out` with `center + U(-half, half)` from a mulberry32 stream (fast, deterministic, not crypto). */
export function fillUniform(out: Float32Array, seed: number, center: number, half: number): Float32Array {
  let a = seed >>> 0;
  const scale = (2 * half) / 4294967296;
  const base = center - half;
  for (let i = 0; i < out.length; i++) {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    out[i] = base + ((t ^ (t >>> 14)) >>> 0) * scale;
  }
  return out;
}

const STD_002 = 0.02 * Math.sqrt(3); // half-width of a uniform with std 0.02

function initFor(name: string, shape: Shape): { center: number; half: number } {
  if (name.endsWith('.bias')) return { center: 0, half: 0.02 };
  if (shape.length === 1) return { center: 1, half: 0.05 }; // every 1-D weight here is a norm scale
  if (/embed_tokens|pos_embed|fake_latent|mask_token|class_emb/.test(name))
    return { center: 0, half: STD_002 };
  const fanIn = numelOf(shape.slice(1));
  return { center: 0, half: 1 / Math.sqrt(fanIn) };
}

export function randomHarmonWeights(
  config: HarmonConfig,
  seed: number,
  options: RandomWeightsOptions = {},
): MemoryWeights {
  const expected = expectedHarmonTensors(config, {
    includeVae: options.includeVae ?? true,
    vaePrefix: options.vaePrefix ?? 'vae.',
  });
  const w = new MemoryWeights();
  for (const [name, shape] of expected) {
    if (name === 'llm.lm_head.weight') continue;
    const n = numelOf(shape);
    const { center, half } = initFor(name, shape);
    const stream = (hashName(name) ^ Math.imul(seed | 0, 0x9e3779b1)) >>> 0;
    w.setLazy(name, shape, () => fillUniform(new Float32Array(n), stream, center, half));
  }
  if (options.includeLmHead) {
    const emb = w.get('llm.model.embed_tokens.weight');
    if (emb) w.setLazy('llm.lm_head.weight', emb.shape, () => emb.read());
  }
  return w;
}
