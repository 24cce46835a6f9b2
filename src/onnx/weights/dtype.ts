/**
 * Stored dtypes -> float32, and float32 -> fp16/bf16 bit patterns (round to nearest even).
 * Readers hand us a freshly allocated, 0-offset byte buffer, so typed-array views over it are
 * always aligned; the float32 case then returns the read buffer itself with no copy.
 */
import { endianness } from 'node:os';
import { AppError } from '../../shared/errors.ts';

// Every file format we read is little-endian, and typed arrays use host order.
if (endianness() !== 'LE') throw new Error('weight readers assume a little-endian host');

/** Element types a checkpoint may store (converted to float32 on read). */
export type StoredDType =
  | 'float32'
  | 'float16'
  | 'bfloat16'
  | 'float64'
  | 'int64'
  | 'int32'
  | 'uint8'
  | 'bool';

export const DTYPE_BYTES: Readonly<Record<StoredDType, number>> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  uint8: 1,
  bool: 1,
};

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** One IEEE binary16 bit pattern -> its exact float32 value (subnormals, inf, NaN payload kept). */
export function float16BitsToFloat32(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) {
    // Zero or subnormal: mant * 2^-24 is exactly representable in float32.
    const v = mant * 2 ** -24;
    return sign ? -v : v;
  }
  if (exp === 0x1f) u32[0] = sign | 0x7f800000 | (mant << 13);
  else u32[0] = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  return f32[0];
}

let halfTable: Float32Array | undefined;
/** All 65536 fp16 values, built once (256 KiB) so decoding a big tensor is one lookup per element. */
function halfLookup(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = float16BitsToFloat32(h);
  }
  return halfTable;
}

/** float32 -> binary16 bits, round to nearest even; overflow -> inf, NaN stays a (quiet) NaN. */
export function float32ToFloat16Bits(value: number): number {
  f32[0] = value;
  return halfFromFloatBits(u32[0]);
}

/**
 * A whole tensor to fp16 bits. Reads the float32 bit patterns through a Uint32Array view and
 * converts in integer arithmetic: the per-element Float32Array round trip of the scalar form ran
 * at ~4 M elements/s, which made the fp16 export of a 0.5B model take hours.
 */
export function toFloat16Array(src: Float32Array): Uint16Array {
  const n = src.length;
  const bits = new Uint32Array(src.buffer, src.byteOffset, n);
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = halfFromFloatBits(bits[i]);
  return out;
}

/** float32 bit pattern (as a uint32) -> binary16 bits; the one conversion both forms above use. */
function halfFromFloatBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs >= 0x38800000 && abs < 0x47800000) {
    // fp16 normal range [2^-14, 2^16): rebias the exponent (112 << 23) and round the 13 dropped
    // bits to nearest even by adding 0xfff plus the kept lsb. A carry out of the largest
    // exponent lands on 0x7c00, which is the right answer (inf) for values that round past 65504.
    return sign | ((abs - 0x38000000 + 0xfff + ((abs >>> 13) & 1)) >>> 13);
  }
  if (abs >= 0x7f800000) return abs === 0x7f800000 ? sign | 0x7c00 : sign | 0x7e00 | ((abs >>> 13) & 0x3ff);
  if (abs >= 0x47800000) return sign | 0x7c00; // >= 2^16 overflows to inf
  // Below the smallest fp16 normal (2^-14): result is a subnormal in units of 2^-24.
  const s = 126 - (abs >>> 23);
  if (s > 24) return sign; // < 2^-25 (or exactly ties to even 0)
  const m = (abs & 0x7fffff) | 0x800000;
  let r = m >>> s;
  const rem = m & ((1 << s) - 1);
  const half = 1 << (s - 1);
  if (rem > half || (rem === half && r & 1)) r++;
  return sign | r; // r may carry into 0x400 = smallest normal, which is the right encoding
}

/** float32 -> bfloat16 bits (upper half, round to nearest even). */
export function float32ToBfloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Converts `count` elements stored as `dtype` at the start of `bytes` (offset 0, aligned) to float32. */
export function decodeToFloat32(bytes: Uint8Array, dtype: StoredDType, count: number): Float32Array {
  const need = count * DTYPE_BYTES[dtype];
  if (bytes.byteLength < need)
    throw new AppError('WEIGHTS_INVALID', `tensor data is ${bytes.byteLength} bytes, needs ${need}`);
  if (bytes.byteOffset % 8 !== 0) bytes = bytes.slice(0, need); // realign (copies) rather than throw
  const buf = bytes.buffer;
  const off = bytes.byteOffset;
  switch (dtype) {
    case 'float32':
      return new Float32Array(buf, off, count);
    case 'float16': {
      const src = new Uint16Array(buf, off, count);
      const table = halfLookup();
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[src[i]];
      return out;
    }
    case 'bfloat16': {
      // bf16 is exactly the upper 16 bits of a float32.
      const src = new Uint16Array(buf, off, count);
      const out = new Uint32Array(count);
      for (let i = 0; i < count; i++) out[i] = src[i] << 16;
      return new Float32Array(out.buffer);
    }
    case 'float64':
      return Float32Array.from(new Float64Array(buf, off, count));
    case 'int64': {
      // Read as (lo, hi) int32 pairs: exact up to 2^53, far beyond any index a weight holds.
      const src = new Int32Array(buf, off, count * 2);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = src[2 * i + 1] * 4294967296 + (src[2 * i] >>> 0);
      return out;
    }
    case 'int32':
      return Float32Array.from(new Int32Array(buf, off, count));
    case 'uint8':
    case 'bool':
      return Float32Array.from(new Uint8Array(buf, off, count));
  }
}

export function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
