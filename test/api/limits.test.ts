// Tenant limits over real HTTP and real Postgres: rate limit, monthly quota (with in-flight
// reservation), idempotent replay / CONFLICT, and the concurrency check the worker calls.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { canStart } from '../../src/tenancy/concurrency.ts';
import { billingPeriod } from '../../src/tenancy/quota.ts';
import { postgresRateLimiter, retryAfterSeconds } from '../../src/tenancy/rate-limit.ts';
import { type ApiHarness, GEN, gen, startApi } from './harness.ts';

let h: ApiHarness;
before(async () => {
  h = await startApi();
});
after(() => h.close());

test('rate limit: the request after the burst is RATE_LIMITED with retryAfter (429 + Retry-After)', async () => {
  const t = await h.newTenant('rl');
  await h.db.prisma.tenant.update({ where: { id: t.tenantId }, data: { ratePerMinute: 3 } });
  for (let i = 0; i < 3; i++) assert.equal((await h.gql(t.key, '{ models { id } }')).status, 200);
  const r = await h.gql(t.key, '{ models { id } }');
  assert.equal(r.status, 429);
  const e = r.body.errors?.[0];
  assert.equal(e?.extensions?.code, 'RATE_LIMITED');
  assert.equal(typeof e?.extensions?.retryAfter, 'number');
  assert.ok((e?.extensions?.retryAfter as number) >= 1 && (e?.extensions?.retryAfter as number) <= 20);
  assert.equal(r.headers.get('retry-after'), String(e?.extensions?.retryAfter));
});

test('rate limiter: concurrent takers never spend more tokens than the bucket holds', async () => {
  const rl = postgresRateLimiter(h.db.prisma);
  const results = await Promise.all(Array.from({ length: 12 }, () => rl.take('test:concurrent', 5)));
  assert.equal(results.filter((r) => r.allowed).length, 5);
  assert.equal(retryAfterSeconds(0, 60), 1);
  assert.equal(retryAfterSeconds(0, 6), 10);
});

test('quota: images of queued jobs count; over the quota is QUOTA_EXCEEDED with retryAfter', async () => {
  const t = await h.newTenant('quota');
  await h.db.prisma.tenant.update({ where: { id: t.tenantId }, data: { monthlyImageQuota: 5 } });
  const first = await h.gql(t.key, GEN, gen({ count: 2 }));
  assert.ok(first.body.data, JSON.stringify(first.body));
  // A billed job from this month (2 images) plus the queued one (2) leaves 1.
  const done = await h.db.prisma.job.create({
    data: {
      tenantId: t.tenantId,
      kind: 'GENERATE',
      status: 'SUCCEEDED',
      modelId: 'tiny-demo',
      input: { prompt: 'x', count: 2 },
    },
  });
  await h.db.prisma.usageRecord.create({ data: { tenantId: t.tenantId, jobId: done.id, images: 2 } });
  const v = await h.gql<{
    viewer: { usage: { images: number; inFlightImages: number; remainingImages: number } };
  }>(t.key, '{ viewer { usage { images inFlightImages remainingImages } } }');
  assert.deepEqual(v.body.data?.viewer.usage, { images: 2, inFlightImages: 2, remainingImages: 1 });
  const jobsBefore = await h.db.prisma.job.count({ where: { tenantId: t.tenantId } });
  const over = await h.gql(t.key, GEN, gen({ count: 2 }));
  const e = over.body.errors?.[0];
  assert.equal(e?.extensions?.code, 'QUOTA_EXCEEDED');
  const untilNextPeriod = (billingPeriod().end.getTime() - Date.now()) / 1000;
  assert.ok(Math.abs((e?.extensions?.retryAfter as number) - untilNextPeriod) < 60);
  assert.equal(await h.db.prisma.job.count({ where: { tenantId: t.tenantId } }), jobsBefore);
  const fits = await h.gql(t.key, GEN, gen({ count: 1 }));
  assert.ok(fits.body.data, JSON.stringify(fits.body));
});

test('idempotency: same key + same input -> the same job (even at quota); different input -> CONFLICT', async () => {
  const t = await h.newTenant('idem');
  await h.db.prisma.tenant.update({ where: { id: t.tenantId }, data: { monthlyImageQuota: 1 } });
  const one = await h.gql<{ generate: { id: string } }>(
    t.key,
    GEN,
    gen({ idempotencyKey: 'order-17', seed: 5 }),
  );
  const two = await h.gql<{ generate: { id: string } }>(
    t.key,
    GEN,
    gen({ idempotencyKey: 'order-17', seed: 5 }),
  );
  assert.ok(one.body.data?.generate.id);
  assert.equal(two.body.data?.generate.id, one.body.data?.generate.id);
  const conflict = await h.gql(t.key, GEN, gen({ idempotencyKey: 'order-17', seed: 6 }));
  assert.equal(conflict.body.errors?.[0]?.extensions?.code, 'CONFLICT');
  assert.equal(await h.db.prisma.job.count({ where: { tenantId: t.tenantId } }), 1);
  assert.equal(await h.db.prisma.jobEvent.count({ where: { tenantId: t.tenantId } }), 1);
});

test('concurrency: canStart is false once maxConcurrentJobs are RUNNING; extra jobs stay QUEUED', async () => {
  const t = await h.newTenant('conc');
  await h.db.prisma.tenant.update({ where: { id: t.tenantId }, data: { maxConcurrentJobs: 1 } });
  const r1 = await h.gql<{ generate: { id: string } }>(t.key, GEN, gen({}));
  const r2 = await h.gql<{ generate: { id: string; status: string } }>(t.key, GEN, gen({}));
  assert.equal(await canStart(h.db.prisma, t.tenantId), true);
  await h.db.prisma.job.update({ where: { id: r1.body.data?.generate.id }, data: { status: 'RUNNING' } });
  assert.equal(await canStart(h.db.prisma, t.tenantId), false);
  // Not rejected: the second job was accepted and waits.
  assert.equal(r2.body.data?.generate.status, 'QUEUED');
  assert.equal(await h.db.prisma.$transaction((tx) => canStart(tx, t.tenantId, { lock: true })), false);
  await h.db.prisma.job.update({ where: { id: r1.body.data?.generate.id }, data: { status: 'SUCCEEDED' } });
  assert.equal(await canStart(h.db.prisma, t.tenantId), true);
});

test('/metrics exposes jobs by status and kind, queue depth and age, API latency', async () => {
  const r = await fetch(`${h.url}/metrics`);
  assert.equal(r.status, 200);
  const text = await r.text();
  assert.match(text, /harmon_jobs\{status="QUEUED",kind="GENERATE"\} [1-9]/);
  assert.match(text, /harmon_queue_depth\{source="jobs",state="queued"\} [1-9]/);
  assert.match(text, /harmon_queue_oldest_age_seconds \d/);
  assert.match(text, /harmon_api_request_duration_seconds_count\{transport="http",status="200"\} [1-9]/);
  assert.match(text, /harmon_api_request_duration_seconds_count\{transport="http",status="429"\} [1-9]/);
});
