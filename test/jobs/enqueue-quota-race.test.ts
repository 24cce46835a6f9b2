/**
 * The monthly quota under concurrency, checked at COMMIT under the tenant's quota lock
 * (src/tenancy/quota.ts armQuotaCheck): concurrent enqueues from two clients (two API
 * processes' pools) never exceed the quota, idempotency stays exact, and one tenant's enqueue no
 * longer waits for another of its enqueues that is still inserting. Real Postgres, real pg-boss.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { enqueueJob } from '../../src/jobs/enqueue.ts';
import { PgBossQueue } from '../../src/jobs/queue/pg-boss-queue.ts';
import type { HarmonJobPayload, SendOptions, SqlTransaction } from '../../src/jobs/queue/port.ts';
import { AppError } from '../../src/shared/errors.ts';
import { createPrisma, type Prisma } from '../../src/storage/db.ts';
import { quotaUsage } from '../../src/tenancy/quota.ts';
import { type FreshDatabase, freshDatabase, TEST_DATABASE_URL } from '../helpers/pg.ts';

let db: FreshDatabase;
let other: Prisma;
let queue: PgBossQueue<HarmonJobPayload>;

before(async () => {
  db = await freshDatabase();
  // A second pool on the same schema: what a second API instance would use.
  other = createPrisma(TEST_DATABASE_URL, { schema: db.schema, max: 4 });
  queue = new PgBossQueue<HarmonJobPayload>({
    connectionString: db.url,
    schema: `${db.schema}_boss`,
    poolMax: 2,
  });
  await queue.start();
});
after(async () => {
  await queue.close();
  await other.$disconnect();
  await db.drop();
});

const newTenant = async (name: string, monthlyImageQuota: number) =>
  (await db.prisma.tenant.create({ data: { name, monthlyImageQuota } })).id;

const gen = (tenantId: string, prompt: string, count = 1, over: Record<string, unknown> = {}) => ({
  tenantId,
  kind: 'GENERATE' as const,
  modelId: 'tiny',
  input: count === 1 ? { prompt } : { prompt, count },
  quotaImages: count,
  ...over,
});

const isQuota = (e: unknown) => e instanceof AppError && e.code === 'QUOTA_EXCEEDED';

/** Settled outcomes: job ids created and QUOTA_EXCEEDED count; anything else fails the test. */
async function outcomes(runs: Promise<{ id: string }>[]) {
  const settled = await Promise.allSettled(runs);
  const ids: string[] = [];
  let refused = 0;
  for (const s of settled) {
    if (s.status === 'fulfilled') ids.push(s.value.id);
    else if (isQuota(s.reason)) refused++;
    else throw s.reason;
  }
  return { ids, refused };
}

test('40 concurrent 1-image enqueues over two pools at quota 5: exactly 5 jobs, 35 QUOTA_EXCEEDED', async () => {
  const t = await newTenant('race-1', 5);
  const { ids, refused } = await outcomes(
    Array.from({ length: 40 }, (_, i) =>
      enqueueJob({ prisma: i % 2 ? other : db.prisma, queue }, gen(t, `r${i}`)),
    ),
  );
  assert.equal(ids.length, 5);
  assert.equal(refused, 35);
  assert.equal(await db.prisma.job.count({ where: { tenantId: t } }), 5);
  const u = await quotaUsage(db.prisma, t);
  assert.equal(u.inFlightImages, 5);
  assert.equal(u.remainingImages, 0);
});

test('multi-image requests: 12 concurrent 3-image enqueues at quota 10 reserve at most 10 images', async () => {
  const t = await newTenant('race-3', 10);
  const { ids, refused } = await outcomes(
    Array.from({ length: 12 }, (_, i) =>
      enqueueJob({ prisma: i % 2 ? other : db.prisma, queue }, gen(t, `m${i}`, 3)),
    ),
  );
  assert.equal(ids.length, 3, 'three fit (9 images), a fourth would make 12');
  assert.equal(refused, 9);
  assert.equal((await quotaUsage(db.prisma, t)).inFlightImages, 9);
  // The one image left still fits a 1-image request, and then nothing does.
  await enqueueJob({ prisma: db.prisma, queue }, gen(t, 'last one'));
  await assert.rejects(enqueueJob({ prisma: db.prisma, queue }, gen(t, 'over')), (e) => {
    assert.ok(isQuota(e));
    assert.equal((e as AppError).details?.remainingImages, 0);
    assert.equal((e as AppError).details?.quota, 10);
    assert.ok(((e as AppError).details?.retryAfter as number) >= 1);
    return true;
  });
});

test('idempotency at the quota edge: 12 concurrent same-key requests on two pools get one job; others are refused', async () => {
  const t = await newTenant('race-key', 1);
  const keyed = Array.from({ length: 12 }, (_, i) =>
    enqueueJob({ prisma: i % 2 ? other : db.prisma, queue }, gen(t, 'same', 1, { idempotencyKey: 'k' })),
  );
  const unkeyed = Array.from({ length: 6 }, (_, i) =>
    enqueueJob({ prisma: i % 2 ? other : db.prisma, queue }, gen(t, `free ${i}`)),
  );
  const [k, u] = await Promise.all([Promise.allSettled(keyed), outcomes(unkeyed)]);
  const keyedIds = new Set(k.filter((s) => s.status === 'fulfilled').map((s) => s.value.id));
  const jobs = await db.prisma.job.findMany({ where: { tenantId: t } });
  assert.equal(jobs.length, 1, 'quota 1: one job in all');
  if (jobs[0].idempotencyKey === 'k') {
    // The keyed request won the slot: every keyed call returns that job, every unkeyed one is refused.
    assert.deepEqual([...keyedIds], [jobs[0].id]);
    assert.ok(k.every((s) => s.status === 'fulfilled'));
    assert.equal(u.refused, 6);
  } else {
    // An unkeyed request won: every keyed call is refused (none replays a job that never existed).
    assert.equal(keyedIds.size, 0);
    assert.ok(k.every((s) => s.status === 'rejected' && isQuota(s.reason)));
    assert.deepEqual(u.ids, [jobs[0].id]);
  }
});

test("one tenant's enqueue does not wait for another of its enqueues that is still inserting", async () => {
  const t = await newTenant('no-wait', 100);
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let paused!: () => void;
  const isPaused = new Promise<void>((r) => {
    paused = r;
  });
  // The first enqueue stops inside its transaction, after its job and event inserts.
  const slow = {
    send: (p: HarmonJobPayload, o?: SendOptions) => queue.send(p, o),
    async sendInTransaction(tx: SqlTransaction, p: HarmonJobPayload, o?: SendOptions) {
      paused();
      await gate;
      return queue.sendInTransaction(tx, p, o);
    },
  };
  const first = enqueueJob({ prisma: db.prisma, queue: slow }, gen(t, 'slow'));
  try {
    await isPaused;
    // The quota lock is taken at COMMIT, so this one can finish while the first is parked. Under
    // a lock taken at the start of the transaction it would wait for `first` forever.
    const second = enqueueJob({ prisma: other, queue }, gen(t, 'fast'));
    const deadline = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000).unref());
    const won = await Promise.race([second.then(() => 'done' as const), deadline]);
    assert.equal(won, 'done', 'the second enqueue finished while the first was still open');
  } finally {
    release();
  }
  await first;
  assert.equal(await db.prisma.job.count({ where: { tenantId: t } }), 2);
});

test('the armed check is transaction-local: the next transaction on the same pooled connection is unchecked', async () => {
  const t = await newTenant('arm-local', 1);
  const single = createPrisma(TEST_DATABASE_URL, { schema: db.schema, max: 1 });
  try {
    await enqueueJob({ prisma: single, queue }, gen(t, 'armed'));
    await assert.rejects(enqueueJob({ prisma: single, queue }, gen(t, 'armed, over')), isQuota);
    // A plain insert (what the bench's floor does) on that same connection is not checked.
    await single.$transaction((tx) =>
      tx.job.create({ data: { tenantId: t, kind: 'GENERATE', modelId: 'tiny', input: { prompt: 'plain' } } }),
    );
    assert.equal(await db.prisma.job.count({ where: { tenantId: t } }), 2);
  } finally {
    await single.$disconnect();
  }
});
