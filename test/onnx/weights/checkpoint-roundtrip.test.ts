// Harmon-named checkpoints (tiny config, random weights) through every writer and back: the
// readers return the same tensors and validateWeights accepts them, or names what is wrong.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { HARMON_TINY } from '../../../src/model/config.ts';
import { expectedHarmonTensors, expectedVaeTensors } from '../../../src/onnx/harmon-keys.ts';
import { openCheckpoint } from '../../../src/onnx/weights/open-checkpoint.ts';
import { randomHarmonWeights } from '../../../src/onnx/weights/random.ts';
import { MemoryWeights, type WeightSource } from '../../../src/onnx/weights/types.ts';
import { validateWeights } from '../../../src/onnx/weights/validate.ts';
import { writeSafetensors, writeTorchZip } from '../../helpers/checkpoint-writers.ts';

const dir = mkdtempSync(join(tmpdir(), 'harmon-ckpt-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const weights = randomHarmonWeights(HARMON_TINY, 11, { includeVae: false });

function assertEqualSources(a: WeightSource, b: WeightSource, names: string[]) {
  for (const n of names) assert.deepEqual(a.get(n)?.read(), b.get(n)?.read(), n);
}

test('harmon_tiny.pth (torch zip, fp32) and HF-style safetensors both load and validate', () => {
  const pth = join(dir, 'harmon_tiny.pth');
  writeTorchZip(pth, weights, { root: 'harmon_tiny' });
  const st = join(dir, 'model.safetensors');
  const withVae = randomHarmonWeights(HARMON_TINY, 11);
  writeSafetensors(st, withVae);
  const expected = expectedHarmonTensors(HARMON_TINY);
  const sample = ['llm.model.embed_tokens.weight', 'mar.encoder_blocks.1.attn.qkv.weight', 'proj_out.2.bias'];
  for (const [path, exp, src] of [
    [pth, expected, weights],
    [st, expectedHarmonTensors(HARMON_TINY, { includeVae: true }), withVae],
  ] as const) {
    const ckpt = openCheckpoint(path);
    try {
      assert.doesNotThrow(() => validateWeights(ckpt, exp, { label: path }));
      assertEqualSources(ckpt, src, [
        ...sample,
        ...(path === st ? ['vae.decoder.up.1.block.0.nin_shortcut.weight'] : []),
      ]);
    } finally {
      ckpt.close();
    }
  }
});

test('bf16 .pth: values come back as bf16-rounded float32', () => {
  const pth = join(dir, 'harmon_bf16.pth');
  const small = new MemoryWeights();
  const name = 'mar.diffloss.net.cond_embed.weight';
  const e = weights.get(name);
  assert.ok(e);
  small.set(name, e.shape, e.read());
  writeTorchZip(pth, small, { dtype: 'bfloat16' });
  const ckpt = openCheckpoint(pth);
  const got = ckpt.get(name)?.read() ?? new Float32Array();
  const want = e.read();
  assert.equal(ckpt.get(name)?.dtype, 'bfloat16');
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= Math.abs(want[i]) * 2 ** -8);
  ckpt.close();
});

test('kl16.ckpt: VAE under "model" with un-prefixed keys and LPIPS loss entries that are ignored', () => {
  const vae = randomHarmonWeights(HARMON_TINY, 3, { vaePrefix: '' });
  const vaeExpected = expectedVaeTensors(HARMON_TINY.vae, '');
  const only = new MemoryWeights();
  for (const n of vaeExpected.keys()) {
    const e = vae.get(n);
    assert.ok(e, n);
    only.set(n, e.shape, e.read());
  }
  only.set('loss.logvar', [], new Float32Array(1));
  only.set('loss.perceptual_loss.net.slice1.0.weight', [4, 3, 3, 3], new Float32Array(108));
  const p = join(dir, 'kl16.ckpt');
  writeTorchZip(p, only, { nestUnder: 'model', dtype: 'float16' });
  const ckpt = openCheckpoint(p);
  try {
    assert.doesNotThrow(() => validateWeights(ckpt, vaeExpected));
    assert.ok(ckpt.names().includes('loss.logvar'));
  } finally {
    ckpt.close();
  }
});

test('a checkpoint with one tensor missing and one mis-shaped fails naming both', () => {
  const broken = new MemoryWeights();
  for (const n of weights.names()) {
    const e = weights.get(n);
    if (!e || n === 'llm.model.layers.1.mlp.down_proj.weight') continue;
    if (n === 'mar.decoder_embed.bias') broken.set(n, [32], e.read().slice(0, 32));
    else broken.set(n, e.shape, e.read());
  }
  const p = join(dir, 'broken.pth');
  writeTorchZip(p, broken);
  const ckpt = openCheckpoint(p);
  try {
    assert.throws(() => validateWeights(ckpt, expectedHarmonTensors(HARMON_TINY), { label: p }), {
      code: 'WEIGHTS_INVALID',
      message:
        /llm\.model\.layers\.1\.mlp\.down_proj\.weight[\s\S]*mar\.decoder_embed\.bias \(expected \[64\], got \[32\]\)/,
    });
  } finally {
    ckpt.close();
  }
});
