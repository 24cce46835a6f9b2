/**
 * Statements enqueueJob sends, counted from Prisma's query log on a real Postgres schema with a
 * real pg-boss queue. The quota lock serialises a tenant's enqueues, so every statement sent while
 * it is held is latency all of that tenant's requests pay: Postgres takes it at COMMIT (the check
 * is armed first and runs as a deferred trigger), so no statement is sent under it. This file pins
 * the statements and their order so a regression shows. Also checks what the one-statement paths must still do: appendFirstEvent's
 * NOTIFY is byte-identical to appendEvent's, and quotaUsage reads all of its figures.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { appendFirstEvent, readEvents } from '../../src/events/event-log.ts';
import { JOB_EVENTS_CHANNEL } from '../../src/events/job-events.ts';
import type { PrismaClient } from '../../src/generated/prisma/client.ts';
import { enqueueJob } from '../../src/jobs/enqueue.ts';
import { recordEvent } from '../../src/jobs/job-lifecycle.ts';
import { PgBossQueue } from '../../src/jobs/queue/pg-boss-queue.ts';
import type { HarmonJobPayload } from '../../src/jobs/queue/port.ts';
import { AppError } from '../../src/shared/errors.ts';
import { quotaUsage } from '../../src/tenancy/quota.ts';
import { type FreshDatabase, freshDatabase, queryLoggingPrisma, TEST_DATABASE_URL } from '../helpers/pg.ts';

let db: FreshDatabase;
let prisma: PrismaClient;
let queue: PgBossQueue<HarmonJobPayload>;
let tenant: string;
const log: string[] = [];

before(async () => {
  db = await freshDatabase();
  prisma = queryLoggingPrisma(db, log);
  queue = new PgBossQueue<HarmonJobPayload>({
    connectionString: db.url,
    schema: `${db.schema}_boss`,
    poolMax: 2,
  });
  await queue.start();
  tenant = (await prisma.tenant.create({ data: { name: 'rtt', monthlyImageQuota: 100 } })).id;
});
after(async () => {
  await queue.close();
  await prisma.$disconnect();
  await db.drop();
});

/** What each logged statement is, in order (Prisma logs COMMIT but not BEGIN). */
function classify(sql: string): string {
  if (sql.includes("set_config('harmon.quota_period_start'") && sql.includes('INSERT INTO "Job"'))
    return 'job + arm quota check';
  if (sql.includes('pg_advisory_xact_lock')) return 'lock';
  if (sql.includes('harmon_quota_usage(')) return 'quota';
  if (/^INSERT INTO "[^"]+"\."Job"/.test(sql) || /^WITH arm .* INSERT INTO "Job"/.test(sql)) return 'job';
  if (sql.includes('INSERT INTO "JobEvent"') && sql.includes('pg_notify')) return 'event+notify';
  if (/INSERT INTO \S+_boss\.job/.test(sql)) return 'message';
  if (/^SELECT .*"Job"\."id"/.test(sql) && sql.includes('"idempotencyKey"')) return 'by-key';
  if (sql === 'COMMIT') return 'commit';
  return `other: ${sql.slice(0, 80)}`;
}

async function statementsOf(run: () => Promise<unknown>): Promise<string[]> {
  log.length = 0;
  await run();
  return log.map(classify);
}

const gen = (prompt: string, over: Record<string, unknown> = {}) => ({
  tenantId: tenant,
  kind: 'GENERATE' as const,
  modelId: 'tiny',
  input: { prompt, steps: 2 },
  quotaImages: 1,
  ...over,
});

test('an enqueue with a quota check sends 3 statements + COMMIT and none under the quota lock (was lock, quota, then 3 + COMMIT under it)', async () => {
  const got = await statementsOf(() => enqueueJob({ prisma, queue }, gen('count me')));
  assert.deepEqual(got, ['job + arm quota check', 'event+notify', 'message', 'commit']);
  // Without images to reserve (describe) nothing is armed.
  const plain = await statementsOf(() =>
    enqueueJob({ prisma, queue }, gen('describe me', { kind: 'DESCRIBE', quotaImages: 0 })),
  );
  assert.deepEqual(plain, ['job', 'event+notify', 'message', 'commit']);
});

test('the Job the raw insert returns is the row Prisma reads back', async () => {
  const job = await enqueueJob(
    // The webhook host is checked at enqueue (SSRF rule): answer its lookup with a public address.
    { prisma, queue, lookup: async () => ['93.184.216.34'] },
    gen('same row', {
      idempotencyKey: 'row-1',
      webhookUrl: 'https://example.com/h',
      input: { prompt: 'p', count: 2 },
      quotaImages: 2,
    }),
  );
  assert.deepEqual(job, await prisma.job.findUniqueOrThrow({ where: { id: job.id } }));
  assert.equal(job.status, 'QUEUED');
  assert.ok(job.createdAt instanceof Date && Math.abs(job.createdAt.getTime() - Date.now()) < 60_000);
});

test('with an idempotency key: one lookup before the transaction; a racing same-key insert waits on the unique index, not the lock', async () => {
  const got = await statementsOf(() =>
    enqueueJob({ prisma, queue }, gen('keyed', { idempotencyKey: 'k-1' })),
  );
  assert.deepEqual(got, ['by-key', 'job + arm quota check', 'event+notify', 'message', 'commit']);
  // A replay reads the key and returns before any transaction.
  const again = await statementsOf(() =>
    enqueueJob({ prisma, queue }, gen('keyed', { idempotencyKey: 'k-1' })),
  );
  assert.deepEqual(again, ['by-key']);
});

test('appendFirstEvent: seq 1 stored as appendEvent stores it, same NOTIFY channel and payload text', async () => {
  const listener = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await listener.connect();
  const heard: string[] = [];
  listener.on('notification', (n) => {
    if (n.channel === JOB_EVENTS_CHANNEL && n.payload) heard.push(n.payload);
  });
  await listener.query(`LISTEN ${JOB_EVENTS_CHANNEL}`);
  try {
    const job = await prisma.job.create({
      data: { tenantId: tenant, kind: 'GENERATE', modelId: 'tiny', input: { prompt: 'x' } },
    });
    const first = await prisma.$transaction((tx) =>
      appendFirstEvent(tx, { jobId: job.id, tenantId: tenant, type: 'STATUS', status: 'QUEUED' }),
    );
    const second = await recordEvent(prisma, job.id, tenant, {
      type: 'PROGRESS',
      status: 'RUNNING',
      payload: { step: 1, totalSteps: 2 },
    });
    assert.equal(first.seq, 1);
    assert.equal(second.seq, 2);
    assert.ok(first.createdAt instanceof Date);
    assert.ok(Math.abs(first.createdAt.getTime() - Date.now()) < 60_000, 'createdAt is UTC now');
    assert.deepEqual(first.payload, { status: 'QUEUED' });
    const stored = await readEvents(prisma, tenant, job.id);
    assert.deepEqual(
      stored.map((e) => [e.seq, e.type, e.payload.status]),
      [
        [1, 'STATUS', 'QUEUED'],
        [2, 'PROGRESS', 'RUNNING'],
      ],
    );
    assert.deepEqual(stored[0], first);
    // Wait for both doorbells; subscribers JSON.parse them, the text must match appendEvent's.
    for (let i = 0; i < 100 && heard.filter((h) => h.includes(job.id)).length < 2; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(
      heard.filter((h) => h.includes(job.id)),
      [
        JSON.stringify({ jobId: job.id, tenantId: tenant, seq: 1 }),
        JSON.stringify({ jobId: job.id, tenantId: tenant, seq: 2 }),
      ],
    );
    // A job that already has events is refused instead of getting a second seq 1.
    await assert.rejects(
      prisma.$transaction((tx) =>
        appendFirstEvent(tx, { jobId: job.id, tenantId: tenant, type: 'STATUS', status: 'QUEUED' }),
      ),
    );
  } finally {
    await listener.end();
  }
});

test('quotaUsage reads quota, billed usage this period and in-flight images in one statement', async () => {
  const t = (await prisma.tenant.create({ data: { name: 'usage', monthlyImageQuota: 50 } })).id;
  const mk = (
    status: 'QUEUED' | 'RUNNING' | 'SUCCEEDED',
    input: object,
    kind: 'GENERATE' | 'DESCRIBE' = 'GENERATE',
  ) => prisma.job.create({ data: { tenantId: t, kind, status, modelId: 'tiny', input } });
  await mk('QUEUED', { prompt: 'a', count: 3 });
  await mk('RUNNING', { prompt: 'b' });
  await mk('QUEUED', { prompt: 'c' }, 'DESCRIBE');
  const billed = await mk('SUCCEEDED', { prompt: 'd', count: 2 });
  const billed2 = await mk('SUCCEEDED', { prompt: 'e' });
  const old = await mk('SUCCEEDED', { prompt: 'f' });
  const now = new Date();
  await prisma.usageRecord.create({
    data: { tenantId: t, jobId: billed.id, images: 2, tokens: 40, gpuMs: 2_000_000_000 },
  });
  await prisma.usageRecord.create({
    data: { tenantId: t, jobId: billed2.id, images: 1, tokens: 0, gpuMs: 2_000_000_000 },
  });
  // Last period's usage does not count.
  await prisma.usageRecord.create({
    data: { tenantId: t, jobId: old.id, images: 7, tokens: 1, gpuMs: 1, at: new Date(Date.UTC(2000, 0, 1)) },
  });
  log.length = 0;
  const u = await quotaUsage(prisma, t, now);
  assert.equal(log.length, 1);
  assert.equal(u.quota, 50);
  assert.equal(u.images, 3);
  assert.equal(u.tokens, 40);
  assert.equal(u.gpuMs, 4_000_000_000, 'sums above 2^31 survive');
  assert.equal(u.inFlightImages, 4);
  assert.equal(u.remainingImages, 43);
  assert.equal(
    u.periodStart.toISOString(),
    new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1)).toISOString(),
  );
  await assert.rejects(
    quotaUsage(prisma, '00000000-0000-4000-8000-000000000000'),
    (e) => e instanceof AppError && e.code === 'NOT_FOUND',
  );
});
