/**
 * The one seedable random generator of the Harmon pipeline (spec §5.2: bit-exact torch/numpy
 * streams are out of scope, so we own a documented one). Every random draw — generation orders,
 * initial diffusion noise x_T, per-step noise ξ — comes from an `Rng` derived from the user's seed.
 *
 * Generator: xoshiro128** (Blackman & Vigna), 128-bit state, 32-bit output, only 32-bit integer
 * ops (`Math.imul`, shifts), so the stream is identical on every platform and JS engine.
 *
 * Named sub-streams. `rng.fork('noise', step)` returns a generator whose state is a pure
 * function of the parent's *key* (seed + fork path), never of how many values the parent or
 * a sibling has drawn. Why: with a single shared stream, changing one stage (say cfg = 1 draws
 * noise for G rows instead of 2G, or a preview decode, or a different number of tokens in one
 * step) would shift every later draw and change the whole image; with forks each stage's draws
 * depend only on the seed and its own name/indices, so stages stay reproducible in isolation
 * and tests can replay one stage without running the others.
 *
 * Key derivation: the 4×u32 key absorbs each input word with the murmur3 32-bit finaliser
 * (`fmix32`), chaining the lanes so every word affects all of them. Not cryptographic; it only
 * has to decorrelate streams.
 *
 * Normals: Box–Muller in float64 from 53-bit uniforms, rounded to fp32; out[2i] = r·cos θ,
 * out[2i+1] = r·sin θ. `Math.log/sqrt/cos/sin` in V8 come from its own fdlibm port, so the
 * values do not depend on the OS libm.
 */
import { AppError } from '../shared/errors.ts';

const TWO_POW_32 = 4294967296;
const TWO_POW_M24 = 1 / 16777216;
const TWO_POW_M53 = 1 / 9007199254740992;
/** Hex digits of π: a fixed, nothing-up-my-sleeve root key. */
const ROOT_KEY = [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344];

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Mixes one 32-bit word into all four lanes of the key (in place). */
function absorb(key: Uint32Array, word: number): void {
  for (let i = 0; i < 4; i++) {
    key[i] = fmix32((key[i] ^ word) + Math.imul(i + 1, 0x9e3779b9) + key[(i + 3) & 3]);
  }
}

function absorbInteger(key: Uint32Array, n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new AppError('BAD_USER_INPUT', `${what} must be a non-negative integer below 2^53, got ${n}.`);
  }
  absorb(key, n >>> 0); // low 32 bits
  absorb(key, Math.floor(n / TWO_POW_32)); // high 21 bits
}

export class Rng {
  /** Identity of this stream; forks derive from it. Never changes after construction. */
  private readonly key: Uint32Array;
  /** xoshiro128** state. */
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  private constructor(key: Uint32Array, state?: Uint32Array) {
    this.key = key;
    const st = state ?? Uint32Array.from(key);
    if (!state) absorb(st, 0x5eed5eed); // separate the drawing state from the fork key
    if ((st[0] | st[1] | st[2] | st[3]) === 0) st[0] = 1; // xoshiro must not start at all-zero
    this.s0 = st[0];
    this.s1 = st[1];
    this.s2 = st[2];
    this.s3 = st[3];
  }

  /** Root generator for a user seed (a non-negative safe integer). */
  static fromSeed(seed: number): Rng {
    const key = Uint32Array.from(ROOT_KEY);
    absorbInteger(key, seed, 'seed');
    return new Rng(key);
  }

  /** A generator with a raw xoshiro128** state, to check the core against published vectors. */
  static fromRawState(state: readonly [number, number, number, number]): Rng {
    return new Rng(Uint32Array.from(state), Uint32Array.from(state));
  }

  /** Independent sub-stream named by a label and optional integer indices (e.g. step number). */
  fork(label: string, ...indices: number[]): Rng {
    const key = Uint32Array.from(this.key);
    const bytes = new TextEncoder().encode(label);
    absorb(key, bytes.length); // length prefix: ('ab', 'c') and ('a', 'bc') paths never collide
    for (const b of bytes) absorb(key, b);
    absorb(key, indices.length);
    for (const i of indices) absorbInteger(key, i, 'stream index');
    return new Rng(key);
  }

  /** Next raw 32-bit output, as an unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  nextFloat64(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) * TWO_POW_M53;
  }

  /** Uniform fp32 values in [0, 1); each is a multiple of 2^-24, so exactly representable. */
  uniform(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = (this.nextUint32() >>> 8) * TWO_POW_M24;
    return out;
  }

  /** Standard normal fp32 values (Box–Muller, pairs in order cos, sin). */
  normal(n: number): Float32Array {
    const out = new Float32Array(n);
    this.fillNormal(out);
    return out;
  }

  /** Fills `out` with standard normals; an odd count discards the last sine value. */
  fillNormal(out: Float32Array): void {
    for (let i = 0; i < out.length; i += 2) {
      const u1 = 1 - this.nextFloat64(); // (0, 1]: log never sees 0
      const u2 = this.nextFloat64();
      const r = Math.sqrt(-2 * Math.log(u1));
      const theta = 2 * Math.PI * u2;
      out[i] = r * Math.cos(theta);
      if (i + 1 < out.length) out[i + 1] = r * Math.sin(theta);
    }
  }

  /** Uniform integer in [0, n), unbiased (rejection of the short top range), n ≤ 2^32. */
  below(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_POW_32) {
      throw new AppError('INTERNAL', `Rng.below needs an integer in [1, 2^32], got ${n}.`);
    }
    const threshold = (TWO_POW_32 - n) % n; // = 2^32 mod n; values below it would bias the result
    for (;;) {
      const x = this.nextUint32();
      if (x >= threshold) return x % n;
    }
  }

  /** Uniformly random permutation of 0..n-1 (Fisher–Yates, from the end). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.below(i + 1);
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
