import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HARMON_0_5B, HARMON_TINY } from '../../src/model/config.ts';
import { buildVaeDecoder } from '../../src/onnx/builders/vae-decoder.ts';
import { vaeDecoderShapes } from '../../src/onnx/builders/vae-weights.ts';
import { toModelBytes } from '../../src/onnx/graph/serialize.ts';
import type { WeightSource } from '../../src/onnx/weights/types.ts';
import { f32, maxAbsDiff, randomArray, runModel } from '../helpers/ort.ts';
import { toUint8, vaeDecode } from '../reference/vae.ts';
import { randomVaeWeights, relDiff } from './vae-fixtures.ts';

const cfg = HARMON_TINY;
const weights = randomVaeWeights(cfg.vae, 2);
const TOL = 1e-4;
const E = cfg.vae.embedDim;

async function decode(w: WeightSource, lat: Float32Array, B: number, h: number, wd: number, opts = {}) {
  const out = await runModel(toModelBytes(buildVaeDecoder(cfg, w, opts)), {
    latents: f32([B, h, wd, E], lat),
  });
  return {
    pixels: { dims: [...out.pixels.dims], data: out.pixels.data as Float32Array },
    rgb: { dims: [...out.rgb.dims], data: out.rgb.data as Uint8Array },
  };
}

for (const [h, w] of [
  [2, 2],
  [2, 3],
]) {
  test(`decoder matches the float64 reference and the uint8 formula (batch 2, ${16 * h}x${16 * w})`, async () => {
    // Scaled tokens are ~0.2325·N(0,1); 0.6 pushes some pixels past both clip bounds.
    const lat = randomArray(2 * h * w * E, 100 + w, 0.6);
    const out = await decode(weights, lat, 2, h, w);
    const [H, W] = [16 * h, 16 * w];
    assert.deepEqual(out.pixels.dims, [2, 3, H, W]);
    assert.deepEqual(out.rgb.dims, [2, H, W, 3]);
    const ref = vaeDecode(cfg, weights, lat, 2, h, w);
    assert.ok(maxAbsDiff(out.pixels.data, ref) <= TOL, `max abs diff ${maxAbsDiff(out.pixels.data, ref)}`);

    // rgb[b,y,x,c] == floor(clip(127.5·pixels[b,c,y,x] + 128, 0, 255)), HWC layout, exactly.
    const expected = new Uint8Array(2 * H * W * 3);
    for (let b = 0; b < 2; b++)
      for (let c = 0; c < 3; c++)
        for (let p = 0; p < H * W; p++)
          expected[(b * H * W + p) * 3 + c] = toUint8(out.pixels.data[(b * 3 + c) * H * W + p]);
    assert.deepEqual(out.rgb.data, expected);
    assert.ok(out.rgb.data.includes(0) && out.rgb.data.includes(255), 'both clip bounds exercised');
  });
}

test('decoder attention is only in mid; removing it is detectable', async () => {
  const g = buildVaeDecoder(cfg, weights);
  assert.deepEqual(
    g.nodes.filter((n) => n.opType === 'Softmax').map((n) => n.name),
    ['/decoder/mid/attn_1/Softmax'],
  );
  const lat = randomArray(2 * 2 * E, 7, 0.3);
  const out = await decode(weights, lat, 1, 2, 2);
  const noAttn = vaeDecode(cfg, weights, lat, 1, 2, 2, { noAttention: true });
  assert.ok(maxAbsDiff(out.pixels.data, noAttn) > 100 * TOL);
});

test('fp16 weights stay within 2e-2 relative', async () => {
  const lat = randomArray(2 * 2 * E, 8, 0.3);
  const ref = vaeDecode(cfg, weights, lat, 1, 2, 2);
  const out = await decode(weights, lat, 1, 2, 2, { weightDType: 'float16' });
  const rel = relDiff(out.pixels.data, ref);
  assert.ok(rel <= 2e-2, `fp16 relative diff ${rel}`);
});

test('real KL-16 decoder structure: keys, upsample levels, no attention in the up path', () => {
  const dec = vaeDecoderShapes(HARMON_0_5B.vae);
  assert.deepEqual(dec.get('decoder.conv_in.weight'), [512, 16, 3, 3]);
  assert.deepEqual(dec.get('post_quant_conv.weight'), [16, 16, 1, 1]);
  assert.deepEqual(dec.get('decoder.conv_out.weight'), [3, 128, 3, 3]);
  assert.ok(
    dec.has('decoder.up.3.block.0.nin_shortcut.weight') &&
      dec.has('decoder.up.1.block.0.nin_shortcut.weight'),
  );
  assert.ok(dec.has('decoder.up.0.block.2.conv2.weight') && !dec.has('decoder.up.0.upsample.conv.weight'));
  assert.ok(![...dec.keys()].some((k) => /decoder\.up\.\d+\.attn/.test(k)));
  const lazy: WeightSource = {
    names: () => [...dec.keys()],
    get: (name) => {
      const shape = dec.get(name);
      return (
        shape && { name, dtype: 'float32', shape, read: () => assert.fail('build must not read weights') }
      );
    },
    close: () => {},
  };
  const g = buildVaeDecoder(HARMON_0_5B, lazy);
  assert.deepEqual(
    new Set(g.initializers.filter((i) => !i.name.startsWith('const_')).map((i) => i.name)),
    new Set(dec.keys()),
  );
  assert.deepEqual(
    g.nodes.filter((n) => n.opType === 'Resize').map((n) => n.name),
    [
      '/decoder/up.4/upsample/Resize',
      '/decoder/up.3/upsample/Resize',
      '/decoder/up.2/upsample/Resize',
      '/decoder/up.1/upsample/Resize',
    ],
  );
  assert.deepEqual(
    g.outputs.map((o) => [o.name, o.dtype]),
    [
      ['pixels', 'float32'],
      ['rgb', 'uint8'],
    ],
  );
});
