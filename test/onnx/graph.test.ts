import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { BuildContext } from '../../src/onnx/graph/context.ts';
import { GraphBuilder } from '../../src/onnx/graph/graph-builder.ts';
import { gelu, layerNorm, linear } from '../../src/onnx/graph/layers.ts';
import { saveModel, toModelBytes } from '../../src/onnx/graph/serialize.ts';
import { float32ToFloat16Bits } from '../../src/onnx/weights/dtype.ts';
import { MemoryWeights } from '../../src/onnx/weights/types.ts';
import { f32, maxAbsDiff, randomArray, runModel } from '../helpers/ort.ts';

// y = LayerNorm(GELU(x·Wᵀ + b)) — a reference in plain float64 loops.
function reference(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array,
  rows: number,
  inF: number,
  outF: number,
) {
  const out = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    const h = new Float64Array(outF);
    for (let o = 0; o < outF; o++) {
      let s = b[o];
      for (let i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i];
      h[o] = 0.5 * s * (1 + erf(s / Math.SQRT2));
    }
    const mean = h.reduce((a, v) => a + v, 0) / outF;
    const varc = h.reduce((a, v) => a + (v - mean) ** 2, 0) / outF;
    for (let o = 0; o < outF; o++) out[r * outF + o] = (h[o] - mean) / Math.sqrt(varc + 1e-6);
  }
  return out;
}

function erf(x: number): number {
  // Abramowitz–Stegun 7.1.26 is too coarse for 1e-5 checks; use a series/continued fraction.
  const t = Math.abs(x);
  if (t < 3) {
    let sum = t,
      term = t;
    for (let n = 1; n < 60; n++) {
      term *= (-t * t) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  return Math.sign(x) * (1 - (Math.exp(-t * t) / (t * Math.sqrt(Math.PI))) * (1 - 1 / (2 * t * t)));
}

function build(weightDType: 'float32' | 'float16') {
  const [inF, outF] = [8, 16];
  const w = randomArray(outF * inF, 1, 0.5);
  const b = randomArray(outF, 2, 0.1);
  const weights = new MemoryWeights().set('fc.weight', [outF, inF], w).set('fc.bias', [outF], b);
  const g = new GraphBuilder('t');
  const ctx: BuildContext = { g, weights, weightDType };
  const x = g.input('x', 'float32', ['rows', inF]);
  const y = g.scope('block', () =>
    layerNorm(ctx, gelu(ctx, linear(ctx, x, 'fc', inF, outF)), undefined, outF, 1e-6),
  );
  g.output(y, 'y', 'float32', ['rows', outF]);
  return { g, w, b, inF, outF };
}

test('linear + gelu + layernorm graph matches a float64 reference', async () => {
  const { g, w, b, inF, outF } = build('float32');
  const x = randomArray(3 * inF, 3);
  const out = await runModel(toModelBytes(g), { x: f32([3, inF], x) });
  assert.deepEqual([...out.y.dims], [3, outF]);
  assert.ok(maxAbsDiff(out.y.data as Float32Array, reference(x, w, b, 3, inF, outF)) < 1e-4);
  assert.ok(
    g.nodes.some((n) => n.name === '/block/fc/MatMul'),
    'path-style node names',
  );
});

test('fp16 weights stay within fp16 rounding of the reference', async () => {
  const { g, w, b, inF, outF } = build('float16');
  assert.ok(g.initializers.some((i) => i.dtype === 'float16'));
  const x = randomArray(2 * inF, 4);
  const out = await runModel(toModelBytes(g), { x: f32([2, inF], x) });
  assert.ok(maxAbsDiff(out.y.data as Float32Array, reference(x, w, b, 2, inF, outF)) < 2e-2);
});

test('constants are de-duplicated and external data round-trips', async () => {
  const g = new GraphBuilder('c');
  assert.equal(g.ints([1, 2]), g.ints([1, 2]));
  assert.notEqual(g.ints([1, 2]), g.ints([2, 1]));
  const { g: model, w, b, inF, outF } = build('float32');
  const dir = mkdtempSync(join(tmpdir(), 'onnx-ext-'));
  // By default tensors under 1 KiB stay inline (all of this graph's): no data file is written.
  assert.deepEqual(await saveModel(model, join(dir, 'small.onnx'), { externalData: true }), [
    join(dir, 'small.onnx'),
  ]);
  const files = await saveModel(model, join(dir, 'm.onnx'), { externalData: true, inlineBelowBytes: 0 });
  assert.equal(files.length, 2);
  assert.ok(existsSync(files[1]) && statSync(files[1]).size >= (inF * outF + outF) * 4);
  const x = randomArray(inF, 5);
  const out = await runModel(files[0], { x: f32([1, inF], x) });
  assert.ok(maxAbsDiff(out.y.data as Float32Array, reference(x, w, b, 1, inF, outF)) < 1e-4);
});

test('float16 conversion rounds to nearest even and handles specials', () => {
  assert.equal(float32ToFloat16Bits(1), 0x3c00);
  assert.equal(float32ToFloat16Bits(-2), 0xc000);
  assert.equal(float32ToFloat16Bits(65504), 0x7bff);
  assert.equal(float32ToFloat16Bits(70000), 0x7c00);
  assert.equal(float32ToFloat16Bits(Number.NaN) & 0x7c00, 0x7c00);
  assert.equal(float32ToFloat16Bits(2 ** -24), 0x0001); // smallest subnormal
  assert.equal(float32ToFloat16Bits(1 + 2 ** -11), 0x3c00); // tie -> even
  assert.equal(float32ToFloat16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie -> even (up)
});
