import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { EventBus } from '../../src/events/event-bus.ts';
import type { JobEventRecord } from '../../src/events/job-events.ts';
import { enqueueJob } from '../../src/jobs/enqueue.ts';
import { endJob, recordEvent } from '../../src/jobs/job-lifecycle.ts';
import { AppError } from '../../src/shared/errors.ts';
import { type FreshDatabase, freshDatabase } from '../helpers/pg.ts';

let db: FreshDatabase;
let bus: EventBus;
let tenant: string;
let other: string;
const queue = { send: async () => 'm' };

before(async () => {
  db = await freshDatabase();
  tenant = (await db.prisma.tenant.create({ data: { name: 'a' } })).id;
  other = (await db.prisma.tenant.create({ data: { name: 'b' } })).id;
  // A long safety poll: these tests must pass on NOTIFY alone.
  bus = new EventBus({ prisma: db.prisma, databaseUrl: db.url, pollIntervalMs: 60_000 });
  await bus.start();
});
after(async () => {
  await bus.close();
  await db.drop();
});

const newJob = async () =>
  (
    await enqueueJob(
      { prisma: db.prisma, queue },
      { tenantId: tenant, kind: 'GENERATE', modelId: 't', input: { prompt: 'x' } },
    )
  ).id;
const progress = (jobId: string, step: number) =>
  recordEvent(db.prisma, jobId, tenant, {
    type: 'PROGRESS',
    status: 'RUNNING',
    payload: { step, totalSteps: 5 },
  });
const finish = (jobId: string) => endJob(db.prisma, jobId, 'SUCCEEDED', { result: { assetIds: [] } });

async function take(it: AsyncIterator<JobEventRecord>, n: number): Promise<JobEventRecord[]> {
  const out: JobEventRecord[] = [];
  while (out.length < n) {
    const r = await it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

async function drain(it: AsyncIterable<JobEventRecord>): Promise<number[]> {
  const seqs: number[] = [];
  for await (const e of it) seqs.push(e.seq);
  return seqs;
}

test('replay then live, complete after the terminal event; drop after 3 and resume afterSeq 3 without gaps or dupes', async () => {
  const jobId = await newJob();
  await recordEvent(db.prisma, jobId, tenant, { type: 'STATUS', status: 'RUNNING' });
  const first = bus.subscribeJob(tenant, jobId, 0);
  // Replayed: 1 (QUEUED), 2 (RUNNING); live: 3.
  const p = take(first, 3);
  await progress(jobId, 1);
  const got = await p;
  assert.deepEqual(
    got.map((e) => e.seq),
    [1, 2, 3],
  );
  assert.deepEqual(
    got.map((e) => e.type),
    ['STATUS', 'STATUS', 'PROGRESS'],
  );
  await first.return?.(); // the client drops
  assert.equal(bus.subscriberCount, 0);

  // Events while nobody listens.
  await progress(jobId, 2);
  await progress(jobId, 3);
  const resumed = bus.subscribeJob(tenant, jobId, 3);
  const all = drain(resumed);
  await progress(jobId, 4);
  await finish(jobId);
  const seqs = await all;
  // 4, 5 replayed; 6 live; 7 RESULT and 8 STATUS SUCCEEDED; then the stream completes.
  assert.deepEqual(seqs, [4, 5, 6, 7, 8]);
  // A subscriber after the end gets the tail and completes at once.
  assert.deepEqual(await drain(bus.subscribeJob(tenant, jobId, 6)), [7, 8]);
  assert.deepEqual(await drain(bus.subscribeJob(tenant, jobId, 8)), []);
});

test('another tenant subscribing to the job gets NOT_FOUND and no events', async () => {
  const jobId = await newJob();
  await assert.rejects(
    drain(bus.subscribeJob(other, jobId, 0)),
    (e: unknown) => e instanceof AppError && e.code === 'NOT_FOUND',
  );
});

test('1,000 subscribers on one LISTEN connection all receive every event exactly once, in order', async () => {
  const jobId = await newJob();
  const subs = Array.from({ length: 1000 }, (_, i) => drain(bus.subscribeJob(tenant, jobId, i % 2)));
  for (let s = 1; s <= 5; s++) await progress(jobId, s);
  // While 1,000 subscriptions are open, the server sees a handful of LISTEN connections at most
  // (this bus's one, plus any from other test files sharing the server), not one per subscriber.
  assert.equal(bus.subscriberCount, 1000);
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  const { rows } = await c.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query ILIKE 'LISTEN harmon_job_events%'`,
  );
  await c.end();
  assert.ok(rows[0].n >= 1 && rows[0].n < 20, `LISTEN connections: ${rows[0].n}`);
  await finish(jobId);
  const results = await Promise.all(subs);
  for (let i = 0; i < results.length; i++) {
    const start = (i % 2) + 1;
    assert.deepEqual(
      results[i],
      Array.from({ length: 9 - start }, (_, k) => start + k),
      `subscriber ${i}`,
    );
  }
  assert.equal(bus.subscriberCount, 0);
});

test("tenant stream carries live events of all the tenant's jobs and none of other tenants", async () => {
  const it = bus.subscribeTenant(tenant);
  await new Promise((r) => setTimeout(r, 50));
  const a = await newJob();
  const b = await newJob();
  const foreign = (
    await enqueueJob(
      { prisma: db.prisma, queue },
      { tenantId: other, kind: 'GENERATE', modelId: 't', input: { prompt: 'y' } },
    )
  ).id;
  await progress(a, 1);
  await progress(b, 1);
  const got = await take(it, 4);
  await it.return?.();
  assert.deepEqual(got.map((e) => `${e.jobId === a ? 'a' : e.jobId === b ? 'b' : 'x'}${e.seq}`).sort(), [
    'a1',
    'a2',
    'b1',
    'b2',
  ]);
  assert.ok(got.every((e) => e.jobId !== foreign && e.tenantId === tenant));
});

test('a lost LISTEN connection is re-established and missed events are re-read from the log', async () => {
  const jobId = await newJob();
  const it = bus.subscribeJob(tenant, jobId, 0);
  assert.deepEqual(
    (await take(it, 1)).map((e) => e.seq),
    [1],
  );
  // Kill the bus's LISTEN backend from outside.
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  await c.query(
    `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query ILIKE 'LISTEN harmon_job_events%' AND pid <> pg_backend_pid()`,
  );
  await c.end();
  await progress(jobId, 1); // committed while (maybe) nobody listens
  await progress(jobId, 2);
  await finish(jobId);
  assert.deepEqual(await drain(it), [2, 3, 4, 5]);
});
