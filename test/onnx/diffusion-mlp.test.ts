import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HARMON_TINY } from '../../src/model/config.ts';
import { buildDiffusionMlp } from '../../src/onnx/builders/diffusion-mlp.ts';
import { toModelBytes } from '../../src/onnx/graph/serialize.ts';
import { MemoryWeights } from '../../src/onnx/weights/types.ts';
import { f32, maxAbsDiff, randomArray, runModel } from '../helpers/ort.ts';
import { diffusionMlpReference, randomDiffusionWeights, roundWeightsToFp16 } from '../reference/diffusion.ts';

const cfg = HARMON_TINY;
const D = cfg.mar.width;
const weights = randomDiffusionWeights(cfg, 1);
const R = 5;
// Original-scale timesteps incl. both ends of the range (the network never sees the spaced index).
const inputs = {
  x: randomArray(R * 16, 11, 1.5),
  t: Float32Array.from([0, 999, 505, 10, 61]),
  c: randomArray(R * D, 12, 1),
};
const feeds = { x: f32([R, 16], inputs.x), t: f32([R], inputs.t), c: f32([R, D], inputs.c) };
const TOL = 1e-4;

const modelBytes = toModelBytes(buildDiffusionMlp(cfg, weights));
const reference = diffusionMlpReference(cfg, weights, inputs);

test('diffusion_mlp matches the float64 reference (R = 5, t incl. 0 and 999)', async () => {
  const out = await runModel(modelBytes, feeds);
  assert.deepEqual([...out.out.dims], [R, 32]);
  const err = maxAbsDiff(out.out.data as Float32Array, reference);
  assert.ok(err <= TOL, `max-abs ${err}`);
  // Non-degenerate: outputs are O(1), so a 1e-4 match is meaningful.
  assert.ok(Math.max(...reference.map(Math.abs)) > 0.5);
});

test('wrong conventions in the reference exceed the tolerance (sin-first, adaLN scale/shift/gate)', async () => {
  const out = (await runModel(modelBytes, feeds)).out.data as Float32Array;
  const sinFirst = diffusionMlpReference(cfg, weights, inputs, { embedOrder: 'sin-cos' });
  const swapped = diffusionMlpReference(cfg, weights, inputs, { adaOrder: 'scale-shift-gate' });
  assert.ok(maxAbsDiff(out, sinFirst) > 100 * TOL, `sin-first only differs by ${maxAbsDiff(out, sinFirst)}`);
  assert.ok(maxAbsDiff(out, swapped) > 100 * TOL, `adaLN order only differs by ${maxAbsDiff(out, swapped)}`);
});

test('graph interface and node/weight names follow the spec (§6.8, keys under mar.diffloss.net.)', () => {
  const g = buildDiffusionMlp(cfg, weights);
  assert.deepEqual(
    g.inputs.map((i) => [i.name, i.dims]),
    [
      ['x', ['R', 16]],
      ['t', ['R']],
      ['c', ['R', D]],
    ],
  );
  assert.deepEqual(
    g.outputs.map((o) => [o.name, o.dims]),
    [['out', ['R', 32]]],
  );
  const keys = new Set(g.initializers.map((i) => i.name).filter((n) => n.startsWith('mar.')));
  assert.deepEqual([...keys].sort(), weights.names().sort(), 'every checkpoint key is used, no other');
  assert.ok(g.nodes.some((n) => n.name === '/diffusion/res_blocks.1/adaLN_modulation/MatMul'));
  assert.ok(g.nodes.some((n) => n.name.startsWith('/diffusion/final_layer/linear/')));
});

test('zero rows (R = 0) run', async () => {
  const out = await runModel(modelBytes, { x: f32([0, 16], []), t: f32([0], []), c: f32([0, D], []) });
  assert.deepEqual([...out.out.dims], [0, 32]);
});

test('HF-format key prefix is honoured', async () => {
  const prefixed = new MemoryWeights();
  for (const n of weights.names()) {
    const e = weights.get(n)!;
    prefixed.set(`model.${n}`, e.shape, e.read());
  }
  const out = await runModel(toModelBytes(buildDiffusionMlp(cfg, prefixed, { keyPrefix: 'model.' })), feeds);
  assert.ok(maxAbsDiff(out.out.data as Float32Array, reference) <= TOL);
});

test('fp16 weights: within 2e-2 relative of the reference, and exact-ish to fp16-rounded weights', async () => {
  const out = (
    await runModel(toModelBytes(buildDiffusionMlp(cfg, weights, { weightDType: 'float16' })), feeds)
  ).out.data as Float32Array;
  const scale = Math.max(...reference.map(Math.abs));
  assert.ok(maxAbsDiff(out, reference) <= 2e-2 * scale, `fp16 rel ${maxAbsDiff(out, reference) / scale}`);
  assert.ok(maxAbsDiff(out, diffusionMlpReference(cfg, roundWeightsToFp16(weights), inputs)) <= TOL);
});
