// Quota race over real HTTP and real Postgres: concurrent generate requests of one tenant must
// not all pass the monthly quota check (check + insert are one transaction under a tenant lock).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type ApiHarness, GEN, gen, startApi } from './harness.ts';

let h: ApiHarness;
before(async () => {
  h = await startApi();
});
after(() => h.close());

test('quota race: quota 2, six concurrent 1-image requests -> exactly 2 jobs, 4 QUOTA_EXCEEDED with retryAfter', async () => {
  const t = await h.newTenant('race');
  await h.db.prisma.tenant.update({
    where: { id: t.tenantId },
    data: { monthlyImageQuota: 2, ratePerMinute: 1000 },
  });
  const results = await Promise.all(
    Array.from({ length: 6 }, (_, i) => h.gql<{ generate: { id: string } }>(t.key, GEN, gen({ seed: i }))),
  );
  const ok = results.filter((r) => r.body.data?.generate?.id);
  const refused = results.filter((r) => r.body.errors?.[0]?.extensions?.code === 'QUOTA_EXCEEDED');
  assert.equal(ok.length, 2, JSON.stringify(results.map((r) => r.body)));
  assert.equal(refused.length, 4);
  for (const r of refused) {
    const retryAfter = r.body.errors?.[0]?.extensions?.retryAfter;
    assert.equal(typeof retryAfter, 'number');
    assert.ok((retryAfter as number) >= 1);
  }
  assert.equal(await h.db.prisma.job.count({ where: { tenantId: t.tenantId } }), 2);
});

test('quota race with one idempotency key: concurrent replays at quota 1 all get the same job', async () => {
  const t = await h.newTenant('race-idem');
  await h.db.prisma.tenant.update({
    where: { id: t.tenantId },
    data: { monthlyImageQuota: 1, ratePerMinute: 1000 },
  });
  const results = await Promise.all(
    Array.from({ length: 4 }, () =>
      h.gql<{ generate: { id: string } }>(t.key, GEN, gen({ seed: 9, idempotencyKey: 'same-order' })),
    ),
  );
  const ids = new Set(results.map((r) => r.body.data?.generate?.id));
  assert.equal(ids.size, 1, JSON.stringify(results.map((r) => r.body)));
  assert.ok([...ids][0]);
  assert.equal(await h.db.prisma.job.count({ where: { tenantId: t.tenantId } }), 1);
  // A different request without a key is over the quota now.
  const over = await h.gql(t.key, GEN, gen({ seed: 10 }));
  assert.equal(over.body.errors?.[0]?.extensions?.code, 'QUOTA_EXCEEDED');
});
