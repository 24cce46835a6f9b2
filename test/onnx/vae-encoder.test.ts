import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HARMON_0_5B, HARMON_TINY } from '../../src/model/config.ts';
import { buildVaeEncoder } from '../../src/onnx/builders/vae-encoder.ts';
import { vaeDecoderShapes, vaeEncoderShapes } from '../../src/onnx/builders/vae-weights.ts';
import { toModelBytes } from '../../src/onnx/graph/serialize.ts';
import { MemoryWeights, type WeightSource } from '../../src/onnx/weights/types.ts';
import { f32, maxAbsDiff, randomArray, runModel } from '../helpers/ort.ts';
import { vaeEncode } from '../reference/vae.ts';
import { randomVaeWeights, relDiff, withOverrides } from './vae-fixtures.ts';

const cfg = HARMON_TINY;
const weights = randomVaeWeights(cfg.vae, 1);
const TOL = 1e-4;

async function encode(w: WeightSource, px: Float32Array, B: number, H: number, W: number, opts = {}) {
  const out = await runModel(toModelBytes(buildVaeEncoder(cfg, w, opts)), {
    pixel_values: f32([B, 3, H, W], px),
  });
  return { dims: [...out.latents.dims], data: out.latents.data as Float32Array };
}

for (const [H, W] of [
  [32, 32],
  [32, 48],
]) {
  test(`encoder matches the float64 reference (batch 2, ${H}x${W})`, async () => {
    const px = randomArray(2 * 3 * H * W, H + W);
    const out = await encode(weights, px, 2, H, W);
    assert.deepEqual(out.dims, [2, H / 16, W / 16, cfg.vae.embedDim]);
    const ref = vaeEncode(cfg, weights, px, 2, H, W);
    assert.ok(maxAbsDiff(out.data, ref) <= TOL, `max abs diff ${maxAbsDiff(out.data, ref)}`);
    // Pitfall §5.1 #15: the symmetric pad-1 downsample (half-pixel shift) must be far outside TOL.
    const sym = vaeEncode(cfg, weights, px, 2, H, W, { symmetricDownsamplePad: true });
    assert.ok(
      maxAbsDiff(out.data, sym) > 100 * TOL,
      `symmetric pad not detected: ${maxAbsDiff(out.data, sym)}`,
    );
  });
}

test('encoder attention sits only at the last level (one per block) and in mid', async () => {
  const g = buildVaeEncoder(cfg, weights);
  const softmaxes = g.nodes.filter((n) => n.opType === 'Softmax').map((n) => n.name);
  const last = cfg.vae.chMult.length - 1;
  const expected = [
    ...Array.from({ length: cfg.vae.numResBlocks }, (_, j) => `/encoder/down.${last}/attn.${j}/Softmax`),
    '/encoder/mid/attn_1/Softmax',
  ];
  assert.deepEqual(softmaxes, expected);
  // Removing attention changes the latents beyond tolerance, so its presence is really tested.
  const px = randomArray(2 * 3 * 32 * 32, 5);
  const out = await encode(weights, px, 2, 32, 32);
  const noAttn = vaeEncode(cfg, weights, px, 2, 32, 32, { noAttention: true });
  assert.ok(maxAbsDiff(out.data, noAttn) > 100 * TOL);
});

test('GroupNorm eps is 1e-6: eps 1e-5 is detectable on a small-variance input', async () => {
  // Tiny pixels and a zero conv_in bias make the first GroupNorm see variance ~1e-7, where the
  // eps choice dominates the normaliser.
  const w = withOverrides(weights, { 'encoder.conv_in.bias': new Float32Array(cfg.vae.ch) });
  const px = randomArray(3 * 32 * 32, 9, 1e-3);
  const out = await encode(w, px, 1, 32, 32);
  const ref = vaeEncode(cfg, w, px, 1, 32, 32);
  assert.ok(maxAbsDiff(out.data, ref) <= TOL, `max abs diff ${maxAbsDiff(out.data, ref)}`);
  const wrongEps = vaeEncode(cfg, w, px, 1, 32, 32, { eps: 1e-5 });
  assert.ok(
    maxAbsDiff(out.data, wrongEps) > 100 * TOL,
    `eps not detected: ${maxAbsDiff(out.data, wrongEps)}`,
  );
});

test('fp16 weights stay within 2e-2 relative, HF "vae." prefix reads the same tensors', async () => {
  const px = randomArray(2 * 3 * 32 * 48, 11);
  const ref = vaeEncode(cfg, weights, px, 2, 32, 48);
  const g16 = buildVaeEncoder(cfg, weights, { weightDType: 'float16' });
  assert.ok(g16.initializers.some((i) => i.dtype === 'float16'));
  const half = await runModel(toModelBytes(g16), { pixel_values: f32([2, 3, 32, 48], px) });
  const rel = relDiff(half.latents.data as Float32Array, ref);
  assert.ok(rel <= 2e-2, `fp16 relative diff ${rel}`);

  const prefixed = randomVaeWeights(cfg.vae, 1, 'vae.');
  const out = await encode(prefixed, px, 2, 32, 48, { keyPrefix: 'vae.' });
  assert.ok(maxAbsDiff(out.data, ref) <= TOL);
});

test('a missing tensor fails the build with its name', () => {
  const w = new MemoryWeights();
  for (const name of weights.names()) {
    const e = weights.get(name);
    if (e && name !== 'encoder.mid.attn_1.q.weight') w.set(name, e.shape, e.read());
  }
  assert.throws(() => buildVaeEncoder(cfg, w), /encoder\.mid\.attn_1\.q\.weight/);
});

test('real KL-16 structure: key set, parameter counts and attention placement', () => {
  const count = (m: Map<string, number[]>) =>
    [...m.values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
  const enc = vaeEncoderShapes(HARMON_0_5B.vae);
  const dec = vaeDecoderShapes(HARMON_0_5B.vae);
  // Spec §1.7: ≈ 28.3 M (encoder) + 38.2 M (decoder).
  assert.ok(Math.abs(count(enc) / 1e6 - 28.3) < 0.2, `encoder params ${count(enc)}`);
  assert.ok(Math.abs(count(dec) / 1e6 - 38.2) < 0.2, `decoder params ${count(dec)}`);
  assert.deepEqual(enc.get('encoder.conv_out.weight'), [32, 512, 3, 3]);
  assert.deepEqual(enc.get('quant_conv.weight'), [32, 32, 1, 1]);
  assert.ok(
    enc.has('encoder.down.2.block.0.nin_shortcut.weight') &&
      enc.has('encoder.down.4.block.0.nin_shortcut.bias'),
  );
  assert.ok(
    !enc.has('encoder.down.4.downsample.conv.weight') && enc.has('encoder.down.3.downsample.conv.weight'),
  );
  // Build (no weight reads) against shape-only entries: every key must be requested exactly as named.
  const lazy: WeightSource = {
    names: () => [...enc.keys()],
    get: (name) => {
      const shape = enc.get(name);
      return (
        shape && { name, dtype: 'float32', shape, read: () => assert.fail('build must not read weights') }
      );
    },
    close: () => {},
  };
  const g = buildVaeEncoder(HARMON_0_5B, lazy);
  assert.deepEqual(
    new Set(g.initializers.filter((i) => !i.name.startsWith('const_')).map((i) => i.name)),
    new Set(enc.keys()),
  );
  assert.deepEqual(
    g.nodes.filter((n) => n.opType === 'Softmax').map((n) => n.name),
    ['/encoder/down.4/attn.0/Softmax', '/encoder/down.4/attn.1/Softmax', '/encoder/mid/attn_1/Softmax'],
  );
});
