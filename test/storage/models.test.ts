// Proves the migrated database matches prisma/schema.prisma: every model is written with every
// field set through the generated client and read back unchanged.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type FreshDatabase, freshDatabase } from '../helpers/pg.ts';

let db: FreshDatabase;
before(async () => {
  db = await freshDatabase();
});
after(() => db.drop());

const at = (s: string) => new Date(`2026-01-0${s}T00:00:00.000Z`);

test('every model round-trips with all fields', async () => {
  const p = db.prisma;
  const tenant = await p.tenant.create({
    data: {
      name: 'acme',
      maxConcurrentJobs: 3,
      ratePerMinute: 7,
      monthlyImageQuota: 11,
      retentionDays: 5,
      webhookSecret: 'whs',
    },
  });
  assert.deepEqual(await p.tenant.findUniqueOrThrow({ where: { name: 'acme' } }), tenant);
  assert.equal(tenant.maxConcurrentJobs, 3);

  const key = await p.apiKey.create({
    data: {
      tenantId: tenant.id,
      prefix: 'abc',
      secretHash: 'h',
      scopes: ['jobs:read', 'jobs:write'],
      lastUsedAt: at('1'),
      revokedAt: at('2'),
    },
  });
  assert.deepEqual(await p.apiKey.findUniqueOrThrow({ where: { prefix: 'abc' } }), key);
  assert.deepEqual(key.scopes, ['jobs:read', 'jobs:write']);

  const job = await p.job.create({
    data: {
      tenantId: tenant.id,
      kind: 'GENERATE',
      status: 'RUNNING',
      modelId: 'harmon-0.5b',
      input: { prompt: 'a cat', steps: 4, nested: { cfg: 3.5 } },
      idempotencyKey: 'idem-1',
      inputHash: 'ih',
      progress: 0.25,
      text: 'caption',
      errorCode: 'E',
      errorMessage: 'msg',
      attempts: 2,
      cancelRequested: true,
      webhookUrl: 'https://example.invalid/hook',
      queuedAt: at('1'),
      startedAt: at('2'),
      finishedAt: at('3'),
      gpuMs: 1234,
    },
  });
  const jobBack = await p.job.findUniqueOrThrow({
    where: { tenantId_idempotencyKey: { tenantId: tenant.id, idempotencyKey: 'idem-1' } },
  });
  assert.deepEqual(jobBack, job);
  assert.deepEqual(jobBack.input, { prompt: 'a cat', steps: 4, nested: { cfg: 3.5 } });
  assert.equal(jobBack.progress, 0.25);
  await assert.rejects(
    p.job.create({
      data: { tenantId: tenant.id, kind: 'DESCRIBE', modelId: 'm', input: {}, idempotencyKey: 'idem-1' },
    }),
    /Unique constraint/,
  );

  const ev = await p.jobEvent.create({
    data: { jobId: job.id, tenantId: tenant.id, seq: 1, type: 'progress', payload: { p: 0.5 } },
  });
  await p.jobEvent.create({
    data: { jobId: job.id, tenantId: tenant.id, seq: 2, type: 'done', payload: [] },
  });
  assert.deepEqual(
    await p.jobEvent.findUniqueOrThrow({ where: { jobId_seq: { jobId: job.id, seq: 1 } } }),
    ev,
  );
  const after1 = await p.jobEvent.findMany({
    where: { jobId: job.id, seq: { gt: 1 } },
    orderBy: { seq: 'asc' },
  });
  assert.deepEqual(
    after1.map((e) => e.seq),
    [2],
  );
  await assert.rejects(
    p.jobEvent.create({ data: { jobId: job.id, tenantId: tenant.id, seq: 2, type: 'x', payload: {} } }),
    /Unique constraint/,
  );

  const asset = await p.asset.create({
    data: {
      tenantId: tenant.id,
      jobId: job.id,
      key: `tenants/${tenant.id}/a.png`,
      contentType: 'image/png',
      bytes: 10,
      width: 256,
      height: 256,
      sha256: 'f'.repeat(64),
      role: 'OUTPUT',
    },
  });
  assert.deepEqual(await p.asset.findUniqueOrThrow({ where: { id: asset.id } }), asset);

  const upload = await p.upload.create({
    data: {
      tenantId: tenant.id,
      key: `tenants/${tenant.id}/u`,
      contentType: 'image/jpeg',
      bytes: 99,
      expiresAt: at('4'),
      consumedAt: at('5'),
    },
  });
  assert.deepEqual(await p.upload.findUniqueOrThrow({ where: { id: upload.id } }), upload);

  const usage = await p.usageRecord.create({
    data: { tenantId: tenant.id, jobId: job.id, images: 1, tokens: 42, gpuMs: 900 },
  });
  assert.deepEqual(await p.usageRecord.findUniqueOrThrow({ where: { jobId: job.id } }), usage);
  // The unique jobId is what stops a re-delivered job from billing twice.
  await assert.rejects(
    p.usageRecord.create({ data: { tenantId: tenant.id, jobId: job.id, images: 1 } }),
    /Unique constraint/,
  );

  const wd = await p.webhookDelivery.create({
    data: {
      tenantId: tenant.id,
      jobId: job.id,
      eventSeq: 2,
      url: 'https://example.invalid/hook',
      attempts: 1,
      nextAttemptAt: at('6'),
      deliveredAt: at('7'),
      lastError: 'timeout',
    },
  });
  assert.deepEqual(await p.webhookDelivery.findUniqueOrThrow({ where: { id: wd.id } }), wd);

  // Relations resolve in both directions.
  const withAll = await p.job.findUniqueOrThrow({
    where: { id: job.id },
    include: { events: true, assets: true, usageRecord: true, tenant: true },
  });
  assert.equal(withAll.events.length, 2);
  assert.equal(withAll.assets[0].id, asset.id);
  assert.equal(withAll.usageRecord?.id, usage.id);
  assert.equal(withAll.tenant.name, 'acme');

  // Deleting a tenant cascades to everything it owns.
  await p.tenant.delete({ where: { id: tenant.id } });
  assert.equal(await p.job.count(), 0);
  assert.equal(await p.asset.count(), 0);
});

test('raw SQL sees the same schema (search_path follows the test schema)', async () => {
  const rows = await db.prisma.$queryRaw<{ s: string }[]>`SELECT current_schema() AS s`;
  assert.equal(rows[0].s, db.schema);
});
