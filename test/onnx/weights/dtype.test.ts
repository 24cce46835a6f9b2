import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeToFloat32,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
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
