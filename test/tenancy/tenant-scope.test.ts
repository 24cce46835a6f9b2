// Data-layer isolation: tenant B, authenticated with its own key, cannot read or change tenant A's rows.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { forTenant } from '../../src/storage/tenant-scope.ts';
import { createApiKey, resolveApiKey } from '../../src/tenancy/api-keys.ts';
import { type FreshDatabase, freshDatabase } from '../helpers/pg.ts';

let db: FreshDatabase;
before(async () => {
  db = await freshDatabase();
});
after(() => db.drop());

test("a second tenant's key cannot read or update the first tenant's rows", async () => {
  const keyA = await createApiKey(db.prisma, 'tenant-a');
  const keyB = await createApiKey(db.prisma, 'tenant-b');
  const authA = await resolveApiKey(db.prisma, keyA.key);
  const authB = await resolveApiKey(db.prisma, keyB.key);
  assert.ok(authA && authB);
  const a = forTenant(db.prisma, authA.tenantId);
  const b = forTenant(db.prisma, authB.tenantId);

  const job = await a.jobs.create({
    kind: 'GENERATE',
    modelId: 'm',
    input: { prompt: 'x' },
    idempotencyKey: 'k1',
  });
  await a.events.create({ jobId: job.id, seq: 1, type: 'queued', payload: {} });
  const asset = await a.assets.create({
    jobId: job.id,
    key: `tenants/${authA.tenantId}/o`,
    contentType: 'image/png',
    bytes: 1,
    sha256: 'x',
    role: 'OUTPUT',
  });
  const upload = await a.uploads.create({
    key: `tenants/${authA.tenantId}/u`,
    contentType: 'image/png',
    bytes: 1,
    expiresAt: new Date(Date.now() + 60_000),
  });
  await a.usage.create({ jobId: job.id, images: 1 });

  // A sees its own rows.
  assert.equal((await a.jobs.findById(job.id))?.id, job.id);
  assert.equal((await a.events.listAfter(job.id)).length, 1);
  assert.equal((await a.usage.totals(new Date(0))).images, 1);

  // B sees nothing of A's, by id, by listing, or by idempotency key.
  assert.equal(await b.jobs.findById(job.id), null);
  assert.deepEqual(await b.jobs.findMany(), []);
  assert.deepEqual(await b.jobs.findMany({ where: { id: job.id } }), []);
  assert.equal(await b.jobs.findByIdempotencyKey('k1'), null);
  assert.equal(await b.jobs.count(), 0);
  assert.deepEqual(await b.events.listAfter(job.id), []);
  assert.equal(await b.assets.findById(asset.id), null);
  assert.equal(await b.uploads.findById(upload.id), null);
  assert.deepEqual(await b.usage.findMany(), []);
  assert.equal((await b.usage.totals(new Date(0))).images, 0);

  // B cannot change A's rows, nor attach its own rows to A's job.
  await assert.rejects(
    b.jobs.update(job.id, { status: 'CANCELED' }),
    (e: { code?: string }) => e.code === 'NOT_FOUND',
  );
  assert.equal((await b.jobs.updateMany({ id: job.id }, { cancelRequested: true })).count, 0);
  assert.equal((await b.jobs.deleteMany({ id: job.id })).count, 0);
  await assert.rejects(b.uploads.update(upload.id, { consumedAt: new Date() }), /not found/);
  await assert.rejects(b.events.create({ jobId: job.id, seq: 2, type: 'x', payload: {} }), /not found/);
  await assert.rejects(
    b.assets.create({
      jobId: job.id,
      key: 'tenants/b/x',
      contentType: 'a',
      bytes: 1,
      sha256: 'x',
      role: 'INPUT',
    }),
    /not found/,
  );
  await assert.rejects(b.usage.create({ jobId: job.id, images: 5 }), /not found/);
  // Smuggling tenantId through an untyped path is overridden.
  const smuggled = { status: 'FAILED', tenantId: authB.tenantId } as unknown as { status: 'FAILED' };
  await a.jobs.update(job.id, smuggled);

  const fresh = await db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
  assert.equal(fresh.status, 'FAILED');
  assert.equal(fresh.tenantId, authA.tenantId);
  assert.equal(fresh.cancelRequested, false);
  assert.equal(await db.prisma.jobEvent.count(), 1);
  assert.equal(await db.prisma.usageRecord.count(), 1);
});
