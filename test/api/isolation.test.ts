// Tenant isolation over real HTTP: tenant B's key against every query and mutation on tenant A's
// ids gets NOT_FOUND/FORBIDDEN and no trace of A's data; asset URLs are unguessable and expire.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { tenantKey } from '../../src/storage/blob-store.ts';
import { type ApiHarness, startApi } from './harness.ts';

let h: ApiHarness;
let a: { key: string; tenantId: string };
let b: { key: string; tenantId: string };
let jobId: string;
let uploadId: string;

before(async () => {
  h = await startApi({ env: { PRESIGN_TTL_SECONDS: '2' } });
  a = await h.newTenant('iso-a');
  b = await h.newTenant('iso-b');
  const g = await h.gql<{ generate: { id: string } }>(
    a.key,
    'mutation { generate(input: { prompt: "secret of A", size: 64, steps: 2, idempotencyKey: "k1" }) { id } }',
  );
  jobId = g.body.data?.generate.id as string;
  const u = await h.gql<{ createUpload: { id: string } }>(
    a.key,
    'mutation { createUpload(contentType: "image/png", bytes: 100) { id } }',
  );
  uploadId = u.body.data?.createUpload.id as string;
  const key = tenantKey(a.tenantId, 'outputs', 'image.png');
  await h.s3.blobStore.put(key, Buffer.from('png bytes of A'), { contentType: 'image/png' });
  await h.db.prisma.asset.create({
    data: {
      tenantId: a.tenantId,
      jobId,
      key,
      contentType: 'image/png',
      bytes: 14,
      width: 64,
      height: 64,
      sha256: '0'.repeat(64),
      role: 'OUTPUT',
    },
  });
});
after(() => h.close());

const walk: { name: string; query: string; variables: () => Record<string, unknown>; code: string }[] = [
  {
    name: 'job',
    query: 'query($id:ID!){ job(id:$id) { id params } }',
    variables: () => ({ id: jobId }),
    code: 'NOT_FOUND',
  },
  {
    name: 'job.images',
    query: 'query($id:ID!){ job(id:$id) { images { url } } }',
    variables: () => ({ id: jobId }),
    code: 'NOT_FOUND',
  },
  {
    name: 'cancelJob',
    query: 'mutation($id:ID!){ cancelJob(id:$id) { id status } }',
    variables: () => ({ id: jobId }),
    code: 'NOT_FOUND',
  },
  {
    name: 'describe with A’s upload',
    query: 'mutation($u:ID!){ describe(input:{ uploadId:$u }) { id } }',
    variables: () => ({ u: uploadId }),
    code: 'NOT_FOUND',
  },
];

test('tenant B against tenant A’s ids: NOT_FOUND, no data, nothing changed', async () => {
  for (const w of walk) {
    const r = await h.gql(b.key, w.query, w.variables());
    assert.equal(r.body.errors?.[0]?.extensions?.code, w.code, `${w.name}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.data ?? null, null, w.name);
    const text = JSON.stringify(r.body);
    assert.ok(!text.includes('secret of A') && !text.includes(a.tenantId), `${w.name} leaked A's data`);
  }
  const job = await h.db.prisma.job.findUniqueOrThrow({ where: { id: jobId } });
  assert.equal(job.status, 'QUEUED');
  assert.equal(job.cancelRequested, false);
});

test('lists and viewer show only the caller’s own rows; idempotency keys are per tenant', async () => {
  const list = await h.gql<{ jobs: { edges: { node: { id: string } }[] } }>(
    b.key,
    '{ jobs { edges { node { id } } } }',
  );
  assert.deepEqual(list.body.data?.jobs.edges, []);
  const v = await h.gql<{ viewer: { tenant: { id: string; name: string } } }>(
    b.key,
    '{ viewer { tenant { id name } } }',
  );
  assert.deepEqual(v.body.data?.viewer.tenant, { id: b.tenantId, name: 'iso-b' });
  // Same idempotency key as A's job: B gets its own new job, not A's (and no CONFLICT).
  const g = await h.gql<{ generate: { id: string } }>(
    b.key,
    'mutation { generate(input: { prompt: "other", size: 64, steps: 2, idempotencyKey: "k1" }) { id } }',
  );
  assert.ok(g.body.data?.generate.id);
  assert.notEqual(g.body.data?.generate.id, jobId);
});

test('a read-only key is FORBIDDEN to write', async () => {
  const ro = await h.newTenant('iso-a', ['jobs:read']);
  const w = await h.gql(ro.key, 'mutation { generate(input: { prompt: "x", size: 64, steps: 2 }) { id } }');
  assert.equal(w.body.errors?.[0]?.extensions?.code, 'FORBIDDEN');
  const r = await h.gql<{ job: { id: string } }>(ro.key, 'query($id:ID!){ job(id:$id) { id } }', {
    id: jobId,
  });
  assert.equal(r.body.data?.job.id, jobId);
});

test('missing or revoked keys are UNAUTHENTICATED with 401', async () => {
  const none = await h.gql(undefined, '{ viewer { tenant { id } } }');
  assert.equal(none.status, 401);
  assert.equal(none.body.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
  const k = await h.newTenant('iso-revoked');
  await h.db.prisma.apiKey.updateMany({ where: { tenantId: k.tenantId }, data: { revokedAt: new Date() } });
  const revoked = await h.gql(k.key, '{ viewer { tenant { id } } }');
  assert.equal(revoked.status, 401);
});

test('asset URLs carry an unguessable key under the owner’s prefix and expire', async () => {
  const r = await h.gql<{ job: { images: { url: string; bytes: number; width: number }[] } }>(
    a.key,
    'query($id:ID!){ job(id:$id) { images { url bytes width expiresAt } } }',
    { id: jobId },
  );
  const img = r.body.data?.job.images[0];
  assert.ok(img, JSON.stringify(r.body));
  assert.equal(img.width, 64);
  assert.match(
    new URL(img.url).pathname,
    new RegExp(`/tenants/${a.tenantId}/outputs/[0-9a-f]{32}/image.png$`),
  );
  assert.match(img.url, /X-Amz-Expires=2/);
  const ok = await fetch(img.url);
  assert.equal(ok.status, 200);
  assert.equal(await ok.text(), 'png bytes of A');
  await new Promise((res) => setTimeout(res, 3100));
  const expired = await fetch(img.url);
  assert.equal(expired.status, 403);
});
