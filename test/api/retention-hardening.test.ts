// Tenant retention on real Postgres + s3rver, read back over real HTTP: a backdated job loses its
// assets (objects + rows) but keeps its row and status, `images` resolves to []; expired uploads
// older than the retention go; recent data, longer-retention tenants and in-use uploads stay.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { AssetRole } from '../../src/generated/prisma/client.ts';
import { sweepRetention } from '../../src/jobs/retention.ts';
import { tenantKey } from '../../src/storage/blob-store.ts';
import { type ApiHarness, startApi } from './harness.ts';

let h: ApiHarness;
before(async () => {
  h = await startApi();
});
after(() => h.close());

const DAY = 86_400_000;
const ago = (days: number) => new Date(Date.now() - days * DAY);

async function job(tenantId: string, finishedDaysAgo: number, extra: { pendingKeys?: string[] } = {}) {
  const at = ago(finishedDaysAgo);
  return h.db.prisma.job.create({
    data: {
      tenantId,
      kind: 'GENERATE',
      status: 'SUCCEEDED',
      modelId: 'tiny-demo',
      input: { prompt: 'old', size: 64 },
      queuedAt: at,
      startedAt: at,
      finishedAt: at,
      createdAt: at,
      ...extra,
    },
  });
}

async function asset(tenantId: string, jobId: string | null, daysAgo: number, role: AssetRole = 'OUTPUT') {
  const key = tenantKey(tenantId, role === 'PREVIEW' ? 'previews' : 'outputs', 'x.png');
  await h.s3.blobStore.put(key, 'png-bytes', { contentType: 'image/png' });
  return h.db.prisma.asset.create({
    data: {
      tenantId,
      jobId,
      key,
      contentType: 'image/png',
      bytes: 9,
      width: 64,
      height: 64,
      sha256: 'x',
      role,
      createdAt: ago(daysAgo),
    },
  });
}

async function upload(tenantId: string, createdDaysAgo: number, expiresDaysAgo: number) {
  const key = tenantKey(tenantId, 'uploads');
  await h.s3.blobStore.put(key, 'img', { contentType: 'image/png' });
  return h.db.prisma.upload.create({
    data: {
      tenantId,
      key,
      contentType: 'image/png',
      bytes: 3,
      createdAt: ago(createdDaysAgo),
      expiresAt: ago(expiresDaysAgo),
    },
  });
}

const exists = async (key: string) => (await h.s3.blobStore.head(key)) !== null;

const JOB = 'query($id: ID!){ job(id:$id){ status text images { url } } }';
type JobGql = { job: { status: string; images: { url: string }[] } };

test('retention sweep: backdated job assets and old expired uploads are deleted, the job row and status stay', async () => {
  const a = await h.newTenant('retain-7');
  await h.db.prisma.tenant.update({ where: { id: a.tenantId }, data: { retentionDays: 7 } });
  const b = await h.newTenant('retain-30');
  await h.db.prisma.tenant.update({ where: { id: b.tenantId }, data: { retentionDays: 30 } });

  const oldJob = await job(a.tenantId, 10);
  const oldOut = await asset(a.tenantId, oldJob.id, 10);
  const oldPreview = await asset(a.tenantId, oldJob.id, 10, 'PREVIEW');
  const newJob = await job(a.tenantId, 1);
  const newOut = await asset(a.tenantId, newJob.id, 1);
  const bJob = await job(b.tenantId, 10);
  const bOut = await asset(b.tenantId, bJob.id, 10);
  const oldUpload = await upload(a.tenantId, 10, 10);
  const freshUpload = await upload(a.tenantId, 0, -1);
  const inUse = await upload(a.tenantId, 10, 10);
  const waiting = await h.db.prisma.job.create({
    data: {
      tenantId: a.tenantId,
      kind: 'DESCRIBE',
      modelId: 'tiny-demo',
      input: { image: { uploadId: inUse.id } },
    },
  });
  // A finished job whose cleanup of a dead attempt's upload never happened.
  const orphanKey = tenantKey(a.tenantId, 'outputs', 'orphan.png');
  await h.s3.blobStore.put(orphanKey, 'png', { contentType: 'image/png' });
  const leftover = await job(a.tenantId, 0, { pendingKeys: [orphanKey] });

  const before = await h.gql<JobGql>(a.key, JOB, { id: oldJob.id });
  assert.equal(before.body.data?.job.images.length, 1);

  // Bounded: one row per kind per sweep at batch 1, the oldest first.
  const first = await sweepRetention({ prisma: h.db.prisma, blobStore: h.s3.blobStore }, { batch: 1 });
  assert.equal(first.assets, 1);
  assert.equal(first.uploads, 1);
  assert.equal(await h.db.prisma.asset.count({ where: { jobId: oldJob.id } }), 1);

  const rest = await sweepRetention({ prisma: h.db.prisma, blobStore: h.s3.blobStore }, { batch: 100 });
  assert.equal(rest.assets, 1);
  assert.equal(rest.uploads, 0);
  assert.equal(first.pending + rest.pending, 1);

  // The old job: objects and Asset rows gone, row kept with status and a purge mark.
  assert.equal(await exists(oldOut.key), false);
  assert.equal(await exists(oldPreview.key), false);
  assert.equal(await h.db.prisma.asset.count({ where: { jobId: oldJob.id } }), 0);
  const kept = await h.db.prisma.job.findUniqueOrThrow({ where: { id: oldJob.id } });
  assert.equal(kept.status, 'SUCCEEDED');
  assert.ok(kept.assetsPurgedAt);
  const after = await h.gql<JobGql>(a.key, JOB, { id: oldJob.id });
  assert.deepEqual(after.body.data?.job, { status: 'SUCCEEDED', text: null, images: [] });

  // Within retention, or under a longer retention: untouched.
  assert.equal(await exists(newOut.key), true);
  assert.equal((await h.gql<JobGql>(a.key, JOB, { id: newJob.id })).body.data?.job.images.length, 1);
  assert.equal(await exists(bOut.key), true);
  assert.equal(await h.db.prisma.asset.count({ where: { jobId: bJob.id } }), 1);
  assert.equal((await h.db.prisma.job.findUniqueOrThrow({ where: { id: bJob.id } })).assetsPurgedAt, null);

  // Uploads: the old expired one is gone; a fresh one and one a queued job needs stay.
  assert.equal(await exists(oldUpload.key), false);
  assert.equal(await h.db.prisma.upload.count({ where: { id: oldUpload.id } }), 0);
  assert.equal(await exists(freshUpload.key), true);
  assert.equal(await exists(inUse.key), true);
  assert.equal(await h.db.prisma.upload.count({ where: { id: inUse.id } }), 1);
  assert.equal((await h.db.prisma.job.findUniqueOrThrow({ where: { id: waiting.id } })).status, 'QUEUED');

  // The finished job's pending leftover is deleted too.
  assert.equal(await exists(orphanKey), false);
  assert.deepEqual((await h.db.prisma.job.findUniqueOrThrow({ where: { id: leftover.id } })).pendingKeys, []);

  // Nothing left to do: a further sweep is a no-op.
  const idle = await sweepRetention({ prisma: h.db.prisma, blobStore: h.s3.blobStore });
  assert.deepEqual(idle, { assets: 0, uploads: 0, pending: 0, jobIds: [], buckets: 0 });
});
