import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isTenantKey, tenantKey } from '../../src/storage/blob-store.ts';
import { startS3, type TestS3 } from '../helpers/s3.ts';

let s3: TestS3;
before(async () => {
  s3 = await startS3();
});
after(() => s3.stop());

test('tenantKey puts an unguessable key under the tenant prefix and rejects path tricks', () => {
  const a = tenantKey('t1', 'outputs', 'image.png');
  const b = tenantKey('t1', 'outputs', 'image.png');
  assert.match(a, /^tenants\/t1\/outputs\/[0-9a-f]{32}\/image\.png$/);
  assert.notEqual(a, b);
  assert.ok(isTenantKey('t1', a));
  assert.ok(!isTenantKey('t2', a));
  assert.ok(!isTenantKey('t1', 'tenants/t1/../t2/x'));
  assert.throws(() => tenantKey('t1', 'outputs', '../x'), /may only contain/);
  assert.throws(() => tenantKey('t1/..', 'outputs'), /tenantId/);
});

test('put / head / get / delete', async () => {
  const { blobStore } = s3;
  const key = tenantKey('t1', 'misc', 'hello.txt');
  assert.equal(await blobStore.head(key), null);
  await blobStore.put(key, 'hello world', { contentType: 'text/plain' });
  const head = await blobStore.head(key);
  assert.equal(head?.bytes, 11);
  assert.equal(head?.contentType, 'text/plain');
  assert.equal((await blobStore.get(key)).toString(), 'hello world');
  // A stream of unknown length must arrive byte-exact (the SDK checksum trailer used to corrupt it).
  const k2 = tenantKey('t1', 'misc');
  await blobStore.put(k2, Readable.from([Buffer.from('abc'), Buffer.from('def')]));
  assert.equal((await blobStore.get(k2)).toString(), 'abcdef');
  await blobStore.delete(key);
  assert.equal(await blobStore.head(key), null);
  await assert.rejects(blobStore.get(key), (e: { code?: string }) => e.code === 'NOT_FOUND');
});

test('multipart upload of a >10 MiB object is byte-exact', async () => {
  const body = randomBytes(11 * 1024 * 1024 + 123);
  const key = tenantKey('t1', 'big');
  // Record the S3 commands sent, to prove the multipart path was taken.
  const commands: string[] = [];
  s3.blobStore.client.middlewareStack.add(
    (next, context) => (args) => {
      commands.push(String(context.commandName));
      return next(args);
    },
    { step: 'initialize', name: 'recordCommands' },
  );
  await s3.blobStore.put(key, body, { contentType: 'application/octet-stream' });
  assert.equal((await s3.blobStore.head(key))?.bytes, body.length);
  const back = await s3.blobStore.get(key);
  assert.equal(
    createHash('sha256').update(back).digest('hex'),
    createHash('sha256').update(body).digest('hex'),
  );
  s3.blobStore.client.middlewareStack.remove('recordCommands');
  assert.ok(commands.includes('CreateMultipartUploadCommand'), commands.join());
  assert.equal(commands.filter((c) => c === 'UploadPartCommand').length, 3);
  assert.ok(commands.includes('CompleteMultipartUploadCommand'));
});

test('presigned PUT then presigned GET via plain fetch', async () => {
  const key = tenantKey('t1', 'uploads', 'in.png');
  const putUrl = await s3.blobStore.presignPut(key, 60, 'image/png', 1000);
  const body = randomBytes(1000);
  const put = await fetch(putUrl, { method: 'PUT', body, headers: { 'content-type': 'image/png' } });
  assert.equal(put.status, 200);
  const getUrl = await s3.blobStore.presignGet(key, 60);
  const got = await fetch(getUrl);
  assert.equal(got.status, 200);
  assert.deepEqual(Buffer.from(await got.arrayBuffer()), body);
});

test('an expired presigned URL is refused', async () => {
  const key = tenantKey('t1', 'misc');
  await s3.blobStore.put(key, 'secret');
  const url = await s3.blobStore.presignGet(key, 1);
  await sleep(2100);
  const r = await fetch(url);
  assert.equal(r.status, 403);
  await r.arrayBuffer();
  const putUrl = await s3.blobStore.presignPut(tenantKey('t1', 'misc'), 1, 'text/plain', 1);
  await sleep(2100);
  const p = await fetch(putUrl, { method: 'PUT', body: 'x', headers: { 'content-type': 'text/plain' } });
  assert.equal(p.status, 403);
  await p.arrayBuffer();
});

test('a presigned PUT is bounded to the declared size and content type', async () => {
  const key = tenantKey('t1', 'uploads', 'bounded.png');
  const url = await s3.blobStore.presignPut(key, 60, 'image/png', 1000);
  const put = (body: BodyInit, contentType = 'image/png') =>
    fetch(url, { method: 'PUT', body, headers: { 'content-type': contentType } });
  for (const [what, body, type] of [
    ['5 MB for a declared 1,000 bytes', randomBytes(5 * 1024 * 1024), 'image/png'],
    ['1,001 bytes', randomBytes(1001), 'image/png'],
    ['999 bytes', randomBytes(999), 'image/png'],
    ['another content type', randomBytes(1000), 'text/html'],
  ] as const) {
    const r = await put(body, type);
    assert.equal(r.status, 403, what);
    await r.arrayBuffer();
    assert.equal(await s3.blobStore.head(key), null, `${what}: nothing stored`);
  }
  // A body streamed without a Content-Length cannot match the signed one either.
  const chunked = await fetch(url, {
    method: 'PUT',
    body: Readable.toWeb(Readable.from([randomBytes(600), randomBytes(600)])) as ReadableStream,
    headers: { 'content-type': 'image/png' },
    duplex: 'half',
  } as RequestInit);
  assert.equal(chunked.status, 403);
  await chunked.arrayBuffer();
  const body = randomBytes(1000);
  const ok = await put(body);
  assert.equal(ok.status, 200);
  assert.deepEqual(await s3.blobStore.get(key), body);
});
