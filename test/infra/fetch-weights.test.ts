/** The worker image's weight fetcher against a real S3 protocol server (s3rver on loopback). */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { fetchWeights, parseSums } from '../../infra/docker/fetch-weights.ts';

const work = mkdtempSync(join(tmpdir(), 'harmon-weights-'));
const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: join(work, 's3') });
let s3: S3Client;
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const files: Record<string, Buffer> = {
  'llm.onnx': Buffer.from('graph-bytes'),
  'llm.onnx.data': Buffer.alloc(300_000, 7),
  'tokenizer/tokenizer.json': Buffer.from('{"model":{}}'),
};

async function put(key: string, body: Buffer | string) {
  await s3.send(new PutObjectCommand({ Bucket: 'models', Key: key, Body: body }));
}

before(async () => {
  const { port } = (await server.run()) as { port: number };
  s3 = new S3Client({
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    // s3rver stores streamed bodies with aws-chunked framing otherwise (environment probe §4).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  await s3.send(new CreateBucketCommand({ Bucket: 'models' }));
  for (const [k, v] of Object.entries(files)) await put(`harmon-tiny/${k}`, v);
  await put(
    'harmon-tiny/SHA256SUMS',
    Object.entries(files)
      .map(([k, v]) => `${sha(v)}  ${k}`)
      .join('\n'),
  );
});

after(async () => {
  s3.destroy();
  await server.close();
  rmSync(work, { recursive: true, force: true });
});

describe('fetch-weights', () => {
  const target = join(work, 'cache', 'harmon-tiny');

  test('downloads and verifies every file, then serves later starts from the cache', async () => {
    const first = await fetchWeights({ uri: 's3://models/harmon-tiny/', targetDir: target, s3 });
    assert.deepEqual(first.downloaded.sort(), Object.keys(files).sort());
    for (const [k, v] of Object.entries(files)) assert.ok(readFileSync(join(target, k)).equals(v), k);
    const second = await fetchWeights({ uri: 's3://models/harmon-tiny', targetDir: target, s3 });
    assert.deepEqual(second.downloaded, []);
    assert.equal(second.cached.length, 3);
  });

  test('a corrupted cached file is detected and replaced', async () => {
    writeFileSync(join(target, 'llm.onnx'), 'tampered!!!');
    const r = await fetchWeights({ uri: 's3://models/harmon-tiny/', targetDir: target, s3 });
    assert.deepEqual(r.downloaded, ['llm.onnx']);
    assert.ok(readFileSync(join(target, 'llm.onnx')).equals(files['llm.onnx']));
  });

  test('an object that does not match SHA256SUMS fails and leaves nothing under its name', async () => {
    await put('bad/SHA256SUMS', `${sha('expected')}  w.bin\n`);
    await put('bad/w.bin', 'something else');
    const dir = join(work, 'cache', 'bad');
    await assert.rejects(fetchWeights({ uri: 's3://models/bad/', targetDir: dir, s3 }), /checksum mismatch/);
    assert.equal(existsSync(join(dir, 'w.bin')), false);
  });

  test('missing SHA256SUMS refuses to start; paths may not leave the model directory', async () => {
    await assert.rejects(
      fetchWeights({ uri: 's3://models/nothing-here/', targetDir: join(work, 'x'), s3 }),
      /must include SHA256SUMS/,
    );
    assert.throws(() => parseSums(`${sha('a')}  ../../etc/passwd`), /leaves the model directory/);
    assert.throws(() => parseSums('not a checksum line'), /is not/);
  });
});
