import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { HARMON_TINY } from '../../src/model/config.ts';
import { GRAPH_NAMES, MANIFEST_FORMAT, MANIFEST_VERSION } from '../../src/model/manifest.ts';
import { GraphBuilder } from '../../src/onnx/graph/graph-builder.ts';
import { toModelBytes } from '../../src/onnx/graph/serialize.ts';
import { ModelRuntime } from '../../src/runtime/sessions.ts';
import { float32 } from '../../src/runtime/tensors.ts';

// Every graph is y = x + 1 (x: [n, 2]); enough to exercise loading, hashing and feed checks.
function writeDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'runtime-'));
  const graphs: Record<string, unknown> = {};
  for (const name of GRAPH_NAMES) {
    const g = new GraphBuilder(name);
    const x = g.input('x', 'float32', ['n', 2]);
    g.output(g.op1('Add', [x, g.scalar(1)]), 'y', 'float32', ['n', 2]);
    const bytes = toModelBytes(g);
    writeFileSync(join(dir, `${name}.onnx`), bytes);
    graphs[name] = {
      file: `${name}.onnx`,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      bytes: bytes.length,
    };
  }
  const manifest = {
    format: MANIFEST_FORMAT,
    formatVersion: MANIFEST_VERSION,
    modelId: 'test',
    variant: 'tiny',
    demo: true,
    dtype: 'float32',
    config: HARMON_TINY,
    graphs,
    tokenizer: { source: 'test', imageTokenId: 151665 },
    createdAt: new Date().toISOString(),
  };
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  return dir;
}

test('opens every graph, runs with validated feeds and counts runs', async () => {
  const rt = await ModelRuntime.open(writeDir());
  try {
    const out = await rt.run('lm', { x: float32([1, 2], Float32Array.from([1, 2])) });
    assert.deepEqual([...(out.y.data as Float32Array)], [2, 3]);
    assert.equal(rt.stats.runs, 1);
    assert.equal(rt.executionProvider, 'cpu');
    await assert.rejects(rt.run('lm', {}), /missing input x/);
    await assert.rejects(rt.run('lm', { x: float32([2], Float32Array.from([1, 2])) }), /rank 2/);
    await assert.rejects(
      rt.run('lm', { x: float32([1, 2], Float32Array.from([1, 2])), z: float32([1], new Float32Array(1)) }),
      /unexpected input z/,
    );
  } finally {
    await rt.close();
  }
});

test('a corrupted graph is refused by sha256 with its name', async () => {
  const dir = writeDir();
  const path = join(dir, 'vae_decoder.onnx');
  const bytes = readFileSync(path);
  bytes[bytes.length - 1] ^= 0xff;
  writeFileSync(path, bytes);
  await assert.rejects(ModelRuntime.open(dir), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'MODEL_INVALID');
    assert.match(e.message, /vae_decoder\.onnx.*sha256/);
    return true;
  });
});

test('a missing graph file and a broken manifest give coded errors', async () => {
  const dir = writeDir();
  writeFileSync(join(dir, 'lm.onnx'), '');
  await assert.rejects(ModelRuntime.open(dir), /lm\.onnx \(graph lm\) has 0 bytes/);
  writeFileSync(join(dir, 'manifest.json'), '{"format":"harmon-onnx"}');
  await assert.rejects(ModelRuntime.open(dir), /manifest.json .* invalid at: formatVersion/);
  await assert.rejects(ModelRuntime.open(join(dir, 'nope')), /no manifest.json/);
});

/** Waits until every file in `dir` last changed long enough ago for its hash marker to be safe. */
async function settle(dir: string): Promise<void> {
  const newest = () => Math.max(...readdirSync(dir).map((f) => Number(statSync(join(dir, f)).ctimeMs)));
  const deadline = Date.now() + 30_000;
  while (Date.now() < newest() + 250 && Date.now() < deadline) await delay(50);
}

test('a verified load records markers; the next load reads no file; edits are still refused', async () => {
  const dir = writeDir();
  // A whole-second mtime, so putting it back after the edit below restores it exactly.
  const path = join(dir, 'vae_encoder.onnx');
  const stamp = new Date('2020-01-01T00:00:00Z');
  utimesSync(path, stamp, stamp);
  await settle(dir);
  const first = await ModelRuntime.open(dir);
  await first.close();
  assert.ok(first.loadStats.files.length >= GRAPH_NAMES.length);
  assert.deepEqual(new Set(first.loadStats.files.map((f) => f.how)), new Set(['hashed']));
  assert.deepEqual(Object.keys(first.loadStats.msByGraph).sort(), [...GRAPH_NAMES].sort());
  assert.ok(existsSync(join(dir, 'lm.onnx.sha256')));

  const second = await ModelRuntime.open(dir);
  await second.close();
  assert.deepEqual(new Set(second.loadStats.files.map((f) => f.how)), new Set(['marker']));

  // One byte changed in place (same size, same inode), then the mtime put back as it was: the
  // change of ctime, which utimes cannot restore, still invalidates the marker.
  const bytes = readFileSync(path);
  bytes[bytes.length - 1] ^= 0x01;
  writeFileSync(path, bytes);
  utimesSync(path, stamp, stamp);
  assert.equal(statSync(path, { bigint: true }).mtimeNs, BigInt(stamp.getTime()) * 1_000_000n);
  await assert.rejects(
    ModelRuntime.open(dir),
    /vae_encoder\.onnx \(graph vae_encoder\) is corrupted: sha256/,
  );

  // Restored content loads again; a truncated file is refused by its size before any hashing.
  bytes[bytes.length - 1] ^= 0x01;
  writeFileSync(path, bytes);
  await (await ModelRuntime.open(dir)).close();
  writeFileSync(join(dir, 'lm.onnx'), readFileSync(join(dir, 'lm.onnx')).subarray(0, 10));
  await assert.rejects(ModelRuntime.open(dir), /lm\.onnx \(graph lm\) has 10 bytes/);
});

test('a marker for other bytes does not vouch for a file: the forged hash is ignored', async () => {
  const dir = writeDir();
  await settle(dir);
  await (await ModelRuntime.open(dir)).close();
  // A marker whose stamp matches but whose hash differs from the manifest makes the load hash
  // the file itself rather than trust or refuse on the marker's word.
  const marker = join(dir, 'lm.onnx.sha256');
  writeFileSync(marker, readFileSync(marker, 'utf8').replace(/^[0-9a-f]{64}/, '0'.repeat(64)));
  const rt = await ModelRuntime.open(dir);
  await rt.close();
  assert.equal(rt.loadStats.files.find((f) => f.file === 'lm.onnx')?.how, 'hashed');
});

test('a directory of model format 1 (LLM weights stored three times) is refused with a re-export message', async () => {
  const dir = writeDir();
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ ...manifest, formatVersion: 1 }));
  await assert.rejects(ModelRuntime.open(dir), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'MODEL_INVALID');
    assert.match(e.message, /format version 1.*reads version 2.*Re-export it/);
    return true;
  });
});
