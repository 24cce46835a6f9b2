import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeToFloat32,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
  toFloat16Array,
} from '../../../src/onnx/weights/dtype.ts';

test('fp16 bits decode exactly, including subnormals, signed zero, inf and NaN', () => {
  assert.equal(float16BitsToFloat32(0x3c00), 1);
  assert.equal(float16BitsToFloat32(0xc000), -2);
  assert.equal(float16BitsToFloat32(0x7bff), 65504); // largest normal
  assert.equal(float16BitsToFloat32(0x0400), 2 ** -14); // smallest normal
  assert.equal(float16BitsToFloat32(0x0001), 2 ** -24); // smallest subnormal
  assert.equal(float16BitsToFloat32(0x03ff), 1023 * 2 ** -24); // largest subnormal
  assert.ok(Object.is(float16BitsToFloat32(0x8000), -0));
  assert.equal(float16BitsToFloat32(0x7c00), Number.POSITIVE_INFINITY);
  assert.equal(float16BitsToFloat32(0xfc00), Number.NEGATIVE_INFINITY);
  assert.ok(Number.isNaN(float16BitsToFloat32(0x7e00)));
  assert.equal(float16BitsToFloat32(0x3555), 0.333251953125);
});

test('float32 -> fp16 rounds to nearest even and saturates to inf', () => {
  assert.equal(float32ToFloat16Bits(1), 0x3c00);
  assert.equal(float32ToFloat16Bits(65504), 0x7bff);
  assert.equal(float32ToFloat16Bits(65519), 0x7bff); // below the rounding midpoint
  assert.equal(float32ToFloat16Bits(65520), 0x7c00); // midpoint rounds (to even) up to inf
  assert.equal(float32ToFloat16Bits(1e6), 0x7c00);
  assert.equal(float32ToFloat16Bits(Number.NEGATIVE_INFINITY), 0xfc00);
  assert.equal(float32ToFloat16Bits(Number.NaN) & 0x7c00, 0x7c00);
  assert.notEqual(float32ToFloat16Bits(Number.NaN) & 0x3ff, 0);
  assert.equal(float32ToFloat16Bits(2 ** -24), 0x0001);
  assert.equal(float32ToFloat16Bits(2 ** -25), 0x0000); // tie -> even (0)
  assert.equal(float32ToFloat16Bits(1.5 * 2 ** -24), 0x0002); // tie -> even (2)
  assert.equal(float32ToFloat16Bits(2 ** -25 * 1.0001), 0x0001);
  assert.equal(float32ToFloat16Bits(1023.5 * 2 ** -24), 0x0400); // subnormal carries into smallest normal
  assert.equal(float32ToFloat16Bits(1 + 2 ** -11), 0x3c00); // tie between 1 and next: even is 1
  assert.equal(float32ToFloat16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie -> even upward
  assert.equal(float32ToFloat16Bits(-0), 0x8000);
  // Every finite fp16 value survives a round trip.
  for (let h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue; // NaNs
    assert.equal(float32ToFloat16Bits(float16BitsToFloat32(h)), h);
  }
});

/**
 * The spec, checked independently of the bit tricks: the result h is the fp16 value nearest to x
 * (x lies between the midpoints to h's neighbours; on a midpoint h is even). Midpoints of fp16
 * values are exact doubles, so the comparisons are exact.
 */
function assertNearestEven(x: number, h: number): void {
  const mag = h & 0x7fff;
  const v = Math.abs(float16BitsToFloat32(h));
  const a = Math.abs(x);
  const below = mag === 0 ? 0 : (float16BitsToFloat32(mag - 1) + v) / 2;
  // Above 65504 the boundary to inf is the midpoint to the next (virtual) exponent step, 65520.
  const above =
    mag >= 0x7bff
      ? mag === 0x7bff
        ? 65520
        : Number.POSITIVE_INFINITY
      : (v + float16BitsToFloat32(mag + 1)) / 2;
  const msg = `x=${x} -> 0x${h.toString(16)}`;
  assert.equal(h & 0x8000 ? 1 : 0, x < 0 || Object.is(x, -0) ? 1 : 0, msg);
  assert.ok(mag === 0x7c00 ? a >= 65520 : a >= below && a <= above, msg);
  if (a === below || a === above) assert.equal(mag & 1, 0, `${msg} (tie must go to even)`);
}

test('toFloat16Array gives the nearest-even fp16 of every element, specials included', () => {
  const bits = new Uint32Array(1 << 18);
  let s = 12345;
  for (let i = 0; i < bits.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    // Every float32 exponent (sign, subnormal, normal, overflow, inf/NaN) with random mantissas,
    // and every 8th element a mantissa with the low 13 bits at the rounding midpoint.
    const exp = i % 256;
    const mant = i % 8 === 0 ? (s & 0x7fe000) | 0x1000 : s & 0x7fffff;
    bits[i] = ((s >>> 31) << 31) | (exp << 23) | mant;
  }
  const src = new Float32Array(bits.buffer);
  const out = toFloat16Array(src);
  for (let i = 0; i < src.length; i++) {
    const x = src[i];
    if (Number.isNaN(x)) {
      assert.equal(out[i] & 0x7c00, 0x7c00);
      assert.notEqual(out[i] & 0x3ff, 0);
    } else assertNearestEven(x, out[i]);
    assert.equal(out[i], float32ToFloat16Bits(x)); // the scalar and array forms agree
  }
  // A view with an offset into a larger buffer converts only its own elements.
  assert.deepEqual(
    [...toFloat16Array(Float32Array.from([0, 1, -2, 65520]).subarray(1))],
    [0x3c00, 0xc000, 0x7c00],
  );
});

test('bfloat16 conversion is the upper half with round to nearest even', () => {
  assert.equal(float32ToBfloat16Bits(1), 0x3f80);
  assert.equal(float32ToBfloat16Bits(-2), 0xc000);
  assert.equal(float32ToBfloat16Bits(1 + 2 ** -8), 0x3f80); // tie -> even
  assert.equal(float32ToBfloat16Bits(1 + 3 * 2 ** -8), 0x3f82);
  assert.equal(float32ToBfloat16Bits(Number.POSITIVE_INFINITY), 0x7f80);
  assert.equal(float32ToBfloat16Bits(3.4e38), 0x7f80); // rounds past the largest bf16 to inf
  assert.ok((float32ToBfloat16Bits(Number.NaN) & 0x7f) !== 0);
  const bits = Uint16Array.from([0x3f80, 0x0001, 0x8000, 0x7f80, 0xff80, 0x7fc0]);
  const out = decodeToFloat32(new Uint8Array(bits.buffer), 'bfloat16', 6);
  assert.deepEqual(
    [...out.slice(0, 5)],
    [1, 2 ** -133, -0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY],
  );
  assert.ok(Number.isNaN(out[5]));
});

test('decodeToFloat32 converts integer, bool and float64 storages', () => {
  const i64 = BigInt64Array.from([-3n, 0n, 2n ** 40n]);
  assert.deepEqual([...decodeToFloat32(new Uint8Array(i64.buffer), 'int64', 3)], [-3, 0, 2 ** 40]);
  const f64 = Float64Array.from([0.1, -1e300]);
  assert.deepEqual(
    [...decodeToFloat32(new Uint8Array(f64.buffer), 'float64', 2)],
    [Math.fround(0.1), Number.NEGATIVE_INFINITY],
  );
  assert.deepEqual([...decodeToFloat32(Uint8Array.from([0, 1, 255]), 'uint8', 3)], [0, 1, 255]);
  const i32 = Int32Array.from([-5, 7]);
  assert.deepEqual([...decodeToFloat32(new Uint8Array(i32.buffer), 'int32', 2)], [-5, 7]);
  assert.throws(() => decodeToFloat32(new Uint8Array(3), 'float32', 1), { code: 'WEIGHTS_INVALID' });
});
