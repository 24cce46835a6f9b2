/**
 * The embedded S3 checks signatures (issue #13 finding 10): s3rver alone accepted any V4
 * signature and unsigned requests, so tenant A's presigned URL with the path changed to B's key
 * read B's image, and a changed PUT overwrote B's upload. Real s3rver behind the verifying front,
 * real HTTP (fetch for presigned URLs, the AWS SDK for header-signed requests).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { tenantKey } from '../../src/storage/blob-store.ts';
import { startS3, type TestS3 } from '../helpers/s3.ts';

let s3: TestS3;
let keyA: string;
let keyB: string;
const imageB = Buffer.from('the image of tenant B');

before(async () => {
  s3 = await startS3('signed');
  keyA = tenantKey('tenant-a', 'outputs', 'image.png');
  keyB = tenantKey('tenant-b', 'outputs', 'image.png');
  await s3.blobStore.put(keyA, 'the image of tenant A', { contentType: 'image/png' });
  await s3.blobStore.put(keyB, imageB, { contentType: 'image/png' });
});
after(() => s3.stop());

/** `url` with one query parameter replaced. */
function withParam(url: string, name: string, value: string): string {
  const u = new URL(url);
  u.searchParams.set(name, value);
  return u.toString();
}

async function status(url: string, init?: RequestInit): Promise<number> {
  const r = await fetch(url, init);
  await r.arrayBuffer();
  return r.status;
}

const putInit = (body: string): RequestInit => ({
  method: 'PUT',
  body,
  headers: { 'content-type': 'image/png' },
});

test("tenant A's presigned GET with the path changed to B's key is refused; B's image is not served", async () => {
  const url = await s3.blobStore.presignGet(keyA, 60);
  assert.equal(await status(url), 200, 'the URL as issued works');
  const tampered = url.replace(keyA, keyB);
  assert.notEqual(tampered, url);
  const r = await fetch(tampered);
  const body = Buffer.from(await r.arrayBuffer());
  assert.equal(r.status, 403);
  assert.match(body.toString(), /<Code>SignatureDoesNotMatch<\/Code>/);
  assert.ok(!body.includes(imageB), "B's bytes are not in the answer");
});

test("a presigned PUT with the path changed to B's key is refused and B's upload stays", async () => {
  const bodyA = 'an upload of A';
  const url = await s3.blobStore.presignPut(tenantKey('tenant-a', 'uploads'), 60, 'image/png', bodyA.length);
  const tampered = url.replace(/tenants\/tenant-a\/uploads\/[0-9a-f]+/, keyB);
  assert.equal(await status(tampered, putInit(bodyA)), 403);
  assert.deepEqual(await s3.blobStore.get(keyB), imageB);
});

test('a changed signature, date, expiry or credential is refused, for GET and PUT', async () => {
  const get = await s3.blobStore.presignGet(keyA, 60);
  const body = 'fourteen bytes';
  const put = await s3.blobStore.presignPut(tenantKey('tenant-a', 'uploads'), 60, 'image/png', body.length);
  for (const [what, url, init] of [
    ['GET', get, undefined],
    ['PUT', put, putInit(body)],
  ] as const) {
    const sig = new URL(url).searchParams.get('X-Amz-Signature') as string;
    const flipped = `${sig.slice(0, -1)}${sig.endsWith('0') ? '1' : '0'}`;
    const date = new URL(url).searchParams.get('X-Amz-Date') as string;
    const credential = new URL(url).searchParams.get('X-Amz-Credential') as string;
    const later = `${date.slice(0, 13)}${date[13] === '0' ? '1' : '0'}${date.slice(14)}`;
    const tamperings: [string, string][] = [
      ['signature', withParam(url, 'X-Amz-Signature', flipped)],
      ['date', withParam(url, 'X-Amz-Date', later)],
      ['expiry (longer)', withParam(url, 'X-Amz-Expires', '604800')],
      [
        'credential',
        withParam(url, 'X-Amz-Credential', `OTHERKEY/${credential.split('/').slice(1).join('/')}`),
      ],
      ['signed headers', withParam(url, 'X-Amz-SignedHeaders', 'content-type;host')],
      ['no signature', withParam(url, 'X-Amz-Signature', '')],
      ['unsigned', url.split('?')[0]],
    ];
    for (const [how, t] of tamperings)
      assert.equal(await status(t, init), 403, `${what} with a changed ${how}`);
    assert.equal(await status(url, init), 200, `${what} as issued`);
  }
});

test('requests signed with other credentials are refused; the platform client is accepted', async () => {
  const forger = new S3Client({
    region: 'us-east-1',
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.s3.accessKeyId as string, secretAccessKey: 'not-the-secret' },
  });
  try {
    await assert.rejects(forger.send(new GetObjectCommand({ Bucket: s3.bucket, Key: keyB })), (e: Error) => {
      assert.equal(e.name, 'SignatureDoesNotMatch');
      return true;
    });
  } finally {
    forger.destroy();
  }
  assert.deepEqual(await s3.blobStore.get(keyB), imageB);
});

test('CORS preflights still pass (browsers do not sign them)', async () => {
  const url = await s3.blobStore.presignPut(tenantKey('tenant-a', 'uploads'), 60, 'image/png', 10);
  const r = await fetch(url, {
    method: 'OPTIONS',
    headers: {
      origin: 'http://127.0.0.1:4000',
      'access-control-request-method': 'PUT',
      'access-control-request-headers': 'content-type',
    },
  });
  await r.arrayBuffer();
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('access-control-allow-origin'), '*');
});
