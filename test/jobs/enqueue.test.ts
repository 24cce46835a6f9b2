import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { readEvents } from '../../src/events/event-log.ts';
import { enqueueJob, inputHash } from '../../src/jobs/enqueue.ts';
import { recordEvent, requestCancel } from '../../src/jobs/job-lifecycle.ts';
import type { HarmonJobPayload, SendOptions } from '../../src/jobs/queue/port.ts';
import { reconcileJobs } from '../../src/jobs/reconcile.ts';
import { AppError } from '../../src/shared/errors.ts';
import { createPrisma } from '../../src/storage/db.ts';
import { type FreshDatabase, freshDatabase, TEST_DATABASE_URL } from '../helpers/pg.ts';

let db: FreshDatabase;
let tenantA: string;
let tenantB: string;
const sent: HarmonJobPayload[] = [];
const keys: (string | undefined)[] = [];
const queue = {
  failNext: false,
  async send(p: HarmonJobPayload, o?: SendOptions) {
    if (queue.failNext) {
      queue.failNext = false;
      throw new Error('queue down');
    }
    sent.push(p);
    keys.push(o?.key);
    return `m${sent.length}`;
  },
  drainDeadLetters: async () => 0,
};

before(async () => {
  db = await freshDatabase();
  tenantA = (await db.prisma.tenant.create({ data: { name: 'a' } })).id;
  tenantB = (await db.prisma.tenant.create({ data: { name: 'b' } })).id;
});
after(() => db.drop());

const gen = (over: Record<string, unknown> = {}) => ({
  tenantId: tenantA,
  kind: 'GENERATE' as const,
  modelId: 'tiny',
  input: { prompt: 'a red fox', steps: 4, ...over },
});

test('enqueue writes the job, event seq 1 (STATUS QUEUED) and sends {jobId, tenantId} after commit', async () => {
  const before = sent.length;
  const job = await enqueueJob({ prisma: db.prisma, queue }, gen());
  assert.equal(job.status, 'QUEUED');
  assert.deepEqual(sent.slice(before), [{ jobId: job.id, tenantId: tenantA }]);
  const events = await readEvents(db.prisma, tenantA, job.id);
  assert.equal(events.length, 1);
  assert.equal(events[0].seq, 1);
  assert.equal(events[0].type, 'STATUS');
  assert.equal(events[0].payload.status, 'QUEUED');
  // Another tenant reads nothing of it.
  assert.deepEqual(await readEvents(db.prisma, tenantB, job.id), []);
});

test('idempotency: same key + same input -> same job, one message; different input -> CONFLICT', async () => {
  const before = sent.length;
  const first = await enqueueJob({ prisma: db.prisma, queue }, { ...gen(), idempotencyKey: 'k1' });
  // Key order in the input must not matter.
  const again = await enqueueJob(
    { prisma: db.prisma, queue },
    { ...gen(), input: { steps: 4, prompt: 'a red fox' }, idempotencyKey: 'k1' },
  );
  assert.equal(again.id, first.id);
  assert.equal(sent.length, before + 1);
  await assert.rejects(
    enqueueJob({ prisma: db.prisma, queue }, { ...gen({ prompt: 'a blue fox' }), idempotencyKey: 'k1' }),
    (e: unknown) => e instanceof AppError && e.code === 'CONFLICT',
  );
  // The same key in another tenant is a different job.
  const other = await enqueueJob(
    { prisma: db.prisma, queue },
    { ...gen(), tenantId: tenantB, idempotencyKey: 'k1' },
  );
  assert.notEqual(other.id, first.id);
  assert.equal(await db.prisma.job.count({ where: { idempotencyKey: 'k1' } }), 2);
});

test('idempotency holds under a race: 8 concurrent requests with one key make one job', async () => {
  const jobs = await Promise.all(
    Array.from({ length: 8 }, () =>
      enqueueJob({ prisma: db.prisma, queue }, { ...gen({ prompt: 'race' }), idempotencyKey: 'race' }),
    ),
  );
  assert.equal(new Set(jobs.map((j) => j.id)).size, 1);
  assert.equal(await db.prisma.job.count({ where: { tenantId: tenantA, idempotencyKey: 'race' } }), 1);
});

test('inputHash ignores key order but not values', () => {
  const a = inputHash({ kind: 'GENERATE', modelId: 'm', input: { a: 1, b: { c: 2, d: 3 } } });
  const b = inputHash({ kind: 'GENERATE', modelId: 'm', input: { b: { d: 3, c: 2 }, a: 1 } });
  const c = inputHash({ kind: 'GENERATE', modelId: 'm', input: { a: 1, b: { c: 2, d: 4 } } });
  assert.equal(a, b);
  assert.notEqual(a, c);
  assert.notEqual(a, inputHash({ kind: 'DESCRIBE', modelId: 'm', input: { a: 1, b: { c: 2, d: 3 } } }));
});

test('event seq stays 1..n without gaps or duplicates under concurrent appends from several connections', async () => {
  const job = await enqueueJob({ prisma: db.prisma, queue }, gen({ prompt: 'seq' }));
  const clients = [0, 1, 2].map(() => createPrisma(TEST_DATABASE_URL, { schema: db.schema, max: 4 }));
  try {
    await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        recordEvent(clients[i % 3], job.id, tenantA, {
          type: 'PROGRESS',
          status: 'RUNNING',
          payload: { step: i },
        }),
      ),
    );
  } finally {
    await Promise.all(clients.map((c) => c.$disconnect()));
  }
  const events = await readEvents(db.prisma, tenantA, job.id);
  assert.deepEqual(
    events.map((e) => e.seq),
    Array.from({ length: 61 }, (_, i) => i + 1),
  );
  assert.deepEqual(
    await readEvents(db.prisma, tenantA, job.id, 59).then((r) => r.map((e) => e.seq)),
    [60, 61],
  );
});

test("appending to another tenant's job is NOT_FOUND", async () => {
  const job = await enqueueJob({ prisma: db.prisma, queue }, gen({ prompt: 'iso' }));
  await assert.rejects(
    recordEvent(db.prisma, job.id, tenantB, { type: 'STATUS', status: 'RUNNING' }),
    (e: unknown) => e instanceof AppError && e.code === 'NOT_FOUND',
  );
});

test('cancel: QUEUED -> CANCELED with a terminal event; RUNNING -> cancelRequested; other tenant -> NOT_FOUND', async () => {
  const queued = await enqueueJob({ prisma: db.prisma, queue }, gen({ prompt: 'cancel me' }));
  await assert.rejects(
    requestCancel(db.prisma, tenantB, queued.id),
    (e: unknown) => e instanceof AppError && e.code === 'NOT_FOUND',
  );
  const canceled = await requestCancel(db.prisma, tenantA, queued.id);
  assert.equal(canceled.status, 'CANCELED');
  assert.ok(canceled.finishedAt);
  const ev = await readEvents(db.prisma, tenantA, queued.id);
  assert.deepEqual(
    ev.map((e) => [e.seq, e.type, e.payload.status]),
    [
      [1, 'STATUS', 'QUEUED'],
      [2, 'STATUS', 'CANCELED'],
    ],
  );
  // Cancel again: unchanged, no extra event.
  assert.equal((await requestCancel(db.prisma, tenantA, queued.id)).status, 'CANCELED');
  assert.equal((await readEvents(db.prisma, tenantA, queued.id)).length, 2);

  const running = await enqueueJob({ prisma: db.prisma, queue }, gen({ prompt: 'running' }));
  await db.prisma.job.update({ where: { id: running.id }, data: { status: 'RUNNING' } });
  const r = await requestCancel(db.prisma, tenantA, running.id);
  assert.equal(r.status, 'RUNNING');
  assert.equal(r.cancelRequested, true);
});

test('a send that fails after commit keeps the job; the reconciler moves it to a new message once it is stale', async () => {
  queue.failNext = true;
  const job = await enqueueJob({ prisma: db.prisma, queue }, gen({ prompt: 'lost message' }));
  assert.equal(
    sent.some((p) => p.jobId === job.id),
    false,
  );
  // This queue cannot count its messages (like SQS), so staleness decides. Not stale yet: nothing.
  const reconcile = (now?: Date) =>
    reconcileJobs({ prisma: db.prisma, queue, leaseSeconds: 30 }, { staleSeconds: 60, now });
  assert.deepEqual((await reconcile()).resent, []);
  const later = new Date(Date.now() + 120_000);
  assert.ok((await reconcile(later)).resent.includes(job.id));
  const moved = await db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
  assert.notEqual(moved.queueToken, job.queueToken, 'a new token names the new message');
  const mine = sent.flatMap((p, i) => (p.jobId === job.id ? [{ ...p, key: keys[i] }] : []));
  assert.deepEqual(mine, [{ jobId: job.id, tenantId: tenantA, key: moved.queueToken }]);
  // The move touched the job: a pass now finds it fresh again.
  assert.deepEqual((await reconcile()).resent, []);
});
