import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { detectCheckpointFormat, openCheckpoint } from '../../../src/onnx/weights/open-checkpoint.ts';
import { openTorchZip } from '../../../src/onnx/weights/torch-zip.ts';
import { type TensorData, writeTorchLegacy, writeTorchZip } from '../../helpers/checkpoint-writers.ts';

const dir = mkdtempSync(join(tmpdir(), 'torch-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function sample(): Record<string, TensorData> {
  return {
    'encoder.conv_in.weight': {
      shape: [2, 3, 1, 2],
      data: Float32Array.from({ length: 12 }, (_, i) => i * 0.25 - 1.5),
    },
    'encoder.conv_in.bias': { shape: [2], data: Float32Array.from([0.5, -0.75]) },
    'proj.weight': { shape: [3, 5], data: Float32Array.from({ length: 15 }, (_, i) => (i % 7) - 3.5) },
    scalar: { shape: [], data: Float32Array.from([42]) },
  };
}

function assertSame(path: string, dtypeName: string, opts: { subKey?: string } = {}) {
  const src = openCheckpoint(path, opts);
  try {
    const want = sample();
    assert.deepEqual(src.names(), Object.keys(want));
    for (const [name, t] of Object.entries(want)) {
      const e = src.get(name);
      assert.ok(e, name);
      assert.equal(e.dtype, dtypeName);
      assert.deepEqual(e.shape, [...t.shape]);
      assert.deepEqual([...e.read()], [...t.data], name); // sample values are exact in fp16 and bf16
    }
  } finally {
    src.close();
  }
}

test('torch zip round trip for fp32, fp16 and bf16 storages', () => {
  for (const dtype of ['float32', 'float16', 'bfloat16'] as const) {
    const p = join(dir, `${dtype}.pth`);
    writeTorchZip(p, sample(), { dtype });
    assert.equal(detectCheckpointFormat(p), 'torch-zip');
    assertSame(p, dtype);
  }
});

test('a transposed (non-contiguous) tensor is gathered into row-major order', () => {
  const p = join(dir, 'transposed.pth');
  writeTorchZip(p, sample(), { transposed: ['proj.weight'], root: 'my_model' });
  assertSame(p, 'float32');
});

test('kl16-style nested checkpoint: state dict under "model" next to non-tensor entries', () => {
  const p = join(dir, 'kl16.ckpt');
  writeTorchZip(p, sample(), { nestUnder: 'model' });
  assertSame(p, 'float32'); // auto-detected
  assertSame(p, 'float32', { subKey: 'model' });
  assert.throws(() => openTorchZip(p, { subKey: 'ema' }), {
    code: 'WEIGHTS_INVALID',
    message: /no dict under key "ema".*model/,
  });
});

test('zip64 records and DEFLATED entries are read too', () => {
  const z64 = join(dir, 'z64.pth');
  writeTorchZip(z64, sample(), { zip64: true, dtype: 'bfloat16' });
  assertSame(z64, 'bfloat16');
  const deflated = join(dir, 'deflated.pth');
  writeTorchZip(deflated, sample(), { deflate: true, transposed: ['proj.weight'] });
  assertSame(deflated, 'float32');
});

test('legacy (pre-1.6) torch pickles are read as well', () => {
  const p = join(dir, 'legacy.ckpt');
  writeTorchLegacy(p, sample(), { dtype: 'float16', nestUnder: 'state_dict' });
  assert.equal(detectCheckpointFormat(p), 'torch-legacy');
  assertSame(p, 'float16');
  const flat = join(dir, 'legacy-flat.pth');
  writeTorchLegacy(flat, sample(), { transposed: ['proj.weight'] });
  assertSame(flat, 'float32');
});

test('truncated and corrupt torch files fail with WEIGHTS_INVALID', () => {
  const p = join(dir, 'trunc.pth');
  writeTorchZip(p, sample());
  const size = readFileSync(p).length;
  truncateSync(p, size - 40);
  assert.throws(() => openCheckpoint(p), { code: 'WEIGHTS_INVALID' });

  // A zip without data.pkl is not a torch checkpoint.
  const other = join(dir, 'other.zip');
  writeTorchZip(other, sample(), { root: 'x' });
  const bytes = readFileSync(other);
  const renamed = Buffer.from(bytes.toString('latin1').replaceAll('x/data.pkl', 'x/data.pkX'), 'latin1');
  writeFileSync(other, renamed);
  assert.throws(() => openCheckpoint(other), { code: 'WEIGHTS_INVALID', message: /no data\.pkl/ });

  const legacy = join(dir, 'legacy-trunc.pth');
  writeTorchLegacy(legacy, sample());
  truncateSync(legacy, readFileSync(legacy).length - 4);
  assert.throws(() => openCheckpoint(legacy), { code: 'WEIGHTS_INVALID', message: /truncated/ });

  // A storage entry shorter than its tensor needs.
  const short = join(dir, 'short.pth');
  writeTorchZip(short, { w: { shape: [4], data: Float32Array.from([1, 2, 3, 4]) } });
  const s = readFileSync(short);
  // Patch the pickled tensor size (4,) -> (9,): "K\x04\x85" is BININT1 4 + TUPLE1 right after the offset K\x00.
  const at = s.indexOf(Buffer.from([0x4b, 0x00, 0x4b, 0x04, 0x85]));
  assert.ok(at > 0);
  s[at + 3] = 9;
  writeFileSync(short, s);
  assert.throws(() => openCheckpoint(short), { code: 'WEIGHTS_INVALID', message: /tensor w needs bytes/ });
});
