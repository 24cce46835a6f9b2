import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { openCheckpoint } from '../../../src/onnx/weights/open-checkpoint.ts';
import { openSafetensors } from '../../../src/onnx/weights/safetensors.ts';
import { type TensorData, writeSafetensors } from '../../helpers/checkpoint-writers.ts';

const dir = mkdtempSync(join(tmpdir(), 'st-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function sample(): Record<string, TensorData> {
  const a = Float32Array.from({ length: 12 }, (_, i) => (i - 5.5) * 0.37);
  const b = Float32Array.from([1, -2, 65504, 2 ** -24, -0, 3.140625]); // edge values: max fp16, smallest subnormal, -0
  return { 'layer.a.weight': { shape: [3, 4], data: a }, 'layer.b.bias': { shape: [6], data: b } };
}

test('safetensors round trip in fp32 keeps names, order, shapes and exact values', () => {
  const p = join(dir, 'f32.safetensors');
  writeSafetensors(p, sample());
  const src = openCheckpoint(p);
  try {
    assert.deepEqual(src.names(), ['layer.a.weight', 'layer.b.bias']);
    const a = src.get('layer.a.weight');
    assert.equal(a?.dtype, 'float32');
    assert.deepEqual(a?.shape, [3, 4]);
    assert.deepEqual([...(a?.read() ?? [])], [...sample()['layer.a.weight'].data]);
    assert.equal(src.get('nope'), undefined);
  } finally {
    src.close();
  }
});

test('fp16 and bf16 tensors are converted to float32 on read (rounded as the writer rounded)', () => {
  for (const dtype of ['float16', 'bfloat16'] as const) {
    const p = join(dir, `${dtype}.safetensors`);
    writeSafetensors(p, sample(), dtype);
    const src = openSafetensors(p);
    const e = src.get('layer.a.weight');
    assert.equal(e?.dtype, dtype);
    const got = e?.read() ?? new Float32Array();
    const want = sample()['layer.a.weight'].data;
    const tol = dtype === 'float16' ? 2 ** -10 : 2 ** -7;
    for (const [i, v] of want.entries()) {
      assert.ok(Math.abs(got[i] - v) <= Math.abs(v) * tol, `${dtype}[${i}] ${got[i]} vs ${v}`);
    }
    const b = src.get('layer.b.bias')?.read() ?? new Float32Array();
    assert.equal(b[0], 1);
    assert.equal(b[1], -2);
    assert.ok(Object.is(b[4], -0));
    if (dtype === 'float16') assert.equal(b[3], 2 ** -24); // subnormal survives
    src.close();
  }
});

test('mixed dtypes per tensor in one file', () => {
  const p = join(dir, 'mixed.safetensors');
  writeSafetensors(p, sample(), (n) => (n.endsWith('.bias') ? 'bfloat16' : 'float32'));
  const src = openSafetensors(p);
  assert.equal(src.get('layer.a.weight')?.dtype, 'float32');
  assert.equal(src.get('layer.b.bias')?.dtype, 'bfloat16');
  src.close();
});

test('a directory of shards is one source, with or without the index file', () => {
  const shards = join(dir, 'sharded');
  mkdirSync(shards);
  const s = sample();
  writeSafetensors(join(shards, 'model-00001-of-00002.safetensors'), {
    'layer.a.weight': s['layer.a.weight'],
  });
  writeSafetensors(join(shards, 'model-00002-of-00002.safetensors'), { 'layer.b.bias': s['layer.b.bias'] });
  let src = openCheckpoint(shards);
  assert.deepEqual(src.names().sort(), ['layer.a.weight', 'layer.b.bias']);
  assert.equal(src.get('layer.b.bias')?.read()[1], -2);
  src.close();
  writeFileSync(
    join(shards, 'model.safetensors.index.json'),
    JSON.stringify({ weight_map: { 'layer.a.weight': 'model-00001-of-00002.safetensors' } }),
  );
  src = openCheckpoint(shards); // only the shard the index names is opened
  assert.deepEqual(src.names(), ['layer.a.weight']);
  src.close();
});

test('garbage, truncated and inconsistent files fail with WEIGHTS_INVALID', () => {
  const garbage = join(dir, 'garbage.bin');
  writeFileSync(garbage, Buffer.from('this is not a checkpoint at all, just text'));
  assert.throws(() => openCheckpoint(garbage), {
    code: 'WEIGHTS_INVALID',
    message: /not a recognised checkpoint/,
  });
  assert.throws(() => openSafetensors(garbage), { code: 'WEIGHTS_INVALID' });

  const truncated = join(dir, 'truncated.safetensors');
  writeSafetensors(truncated, sample());
  truncateSync(truncated, readFileSync(truncated).length - 10);
  assert.throws(() => openCheckpoint(truncated), {
    code: 'WEIGHTS_INVALID',
    message: /layer\.b\.bias.*truncated/,
  });

  const badShape = join(dir, 'bad-shape.safetensors');
  const header = JSON.stringify({ x: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } });
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  writeFileSync(badShape, Buffer.concat([len, Buffer.from(header), Buffer.alloc(16)]));
  assert.throws(() => openSafetensors(badShape), { code: 'WEIGHTS_INVALID', message: /tensor x/ });

  assert.throws(() => openCheckpoint(join(dir, 'missing.safetensors')), { code: 'WEIGHTS_INVALID' });
});
