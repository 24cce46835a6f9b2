/**
 * enqueueJob on the pg-boss queue: the message is written in the Job's own transaction. Real
 * Postgres (fresh app schema + `<schema>_boss`), real pg-boss.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { readEvents } from '../../src/events/event-log.ts';
import { enqueueJob } from '../../src/jobs/enqueue.ts';
import { PgBossQueue } from '../../src/jobs/queue/pg-boss-queue.ts';
import type { Delivery, HarmonJobPayload, SendOptions, SqlTransaction } from '../../src/jobs/queue/port.ts';
import { AppError } from '../../src/shared/errors.ts';
import { type FreshDatabase, freshDatabase } from '../helpers/pg.ts';

let db: FreshDatabase;
let queue: PgBossQueue<HarmonJobPayload>;
let tenant: string;
let bossSchema: string;
const QUEUE = 'harmon-jobs';

before(async () => {
  db = await freshDatabase();
  // drop() also drops `<schema>_boss`.
  bossSchema = `${db.schema}_boss`;
  queue = new PgBossQueue<HarmonJobPayload>({
    connectionString: db.url,
    schema: bossSchema,
    pollIntervalMs: 500,
    poolMax: 2,
  });
  await queue.start();
  tenant = (await db.prisma.tenant.create({ data: { name: 'tx', monthlyImageQuota: 1000 } })).id;
});
after(async () => {
  await queue.close();
  await db.drop();
});

/** Messages pg-boss holds for a job (keyed by its queue token), read outside any transaction. */
async function messagesFor(jobId: string): Promise<number> {
  const rows = await db.prisma.$queryRawUnsafe<{ n: number }[]>(
    `SELECT count(*)::int AS n FROM "${bossSchema}".job j, "${db.schema}"."Job" a
     WHERE j.name = $1 AND a.id = $2::uuid AND j.data->>'k' = a."queueToken"::text
       AND j.data->'p'->>'jobId' = $2::text`,
    QUEUE,
    jobId,
  );
  return rows[0].n;
}

async function allMessages(): Promise<number> {
  const rows = await db.prisma.$queryRawUnsafe<{ n: number }[]>(
    `SELECT count(*)::int AS n FROM "${bossSchema}".job WHERE name = $1`,
    QUEUE,
  );
  return rows[0].n;
}

const gen = (prompt: string, over: Record<string, unknown> = {}) => ({
  tenantId: tenant,
  kind: 'GENERATE' as const,
  modelId: 'tiny',
  input: { prompt, steps: 4 },
  quotaImages: 1,
  ...over,
});

/** The real queue, with plain `send` counted (it must not be used) and hooks around the tx send. */
function spyQueue(hooks: { before?: () => Promise<void>; after?: (id: string) => Promise<void> } = {}) {
  const spy = {
    plainSends: 0,
    send(p: HarmonJobPayload, o?: SendOptions) {
      spy.plainSends++;
      return queue.send(p, o);
    },
    async sendInTransaction(tx: SqlTransaction, p: HarmonJobPayload, o?: SendOptions) {
      await hooks.before?.();
      const id = await queue.sendInTransaction(tx, p, o);
      await hooks.after?.(id);
      return id;
    },
  };
  return spy;
}

test('a committed job has exactly one message (key = its queue token), written without a separate send', async () => {
  const q = spyQueue();
  const job = await enqueueJob({ prisma: db.prisma, queue: q }, gen('one'));
  assert.equal(q.plainSends, 0);
  assert.equal(await messagesFor(job.id), 1);
  const [row] = await db.prisma.$queryRawUnsafe<{ data: { p: HarmonJobPayload; k: string } }[]>(
    `SELECT data FROM "${bossSchema}".job WHERE name = $1 AND data->>'k' = $2`,
    QUEUE,
    job.queueToken,
  );
  assert.ok(job.queueToken);
  assert.deepEqual(row.data, { p: { jobId: job.id, tenantId: tenant }, k: job.queueToken });
  // Event ordering unchanged: seq 1 is STATUS QUEUED.
  const events = await readEvents(db.prisma, tenant, job.id);
  assert.deepEqual(
    events.map((e) => [e.seq, e.type, e.payload.status]),
    [[1, 'STATUS', 'QUEUED']],
  );
});

test('the message is invisible outside the transaction until the job commits', async () => {
  let seenBeforeCommit = -1;
  const q = spyQueue({
    after: async () => {
      // Another connection (what a worker would use) sees no new message yet.
      seenBeforeCommit = await allMessages();
    },
  });
  const before = await allMessages();
  const job = await enqueueJob({ prisma: db.prisma, queue: q }, gen('invisible'));
  assert.equal(seenBeforeCommit, before);
  assert.equal(await messagesFor(job.id), 1);
});

test('a failure injected after the Job insert, before commit, leaves neither a Job row nor a message', async () => {
  for (const where of ['before the message insert', 'after the message insert'] as const) {
    const jobsBefore = await db.prisma.job.count({ where: { tenantId: tenant } });
    const eventsBefore = await db.prisma.jobEvent.count({ where: { tenantId: tenant } });
    const messagesBefore = await allMessages();
    const boom = async () => {
      throw new Error(`injected ${where}`);
    };
    const q = spyQueue(where === 'before the message insert' ? { before: boom } : { after: boom });
    await assert.rejects(
      enqueueJob({ prisma: db.prisma, queue: q }, gen(`fail ${where}`)),
      new RegExp(`injected ${where}`),
    );
    assert.equal(await db.prisma.job.count({ where: { tenantId: tenant } }), jobsBefore, where);
    assert.equal(await db.prisma.jobEvent.count({ where: { tenantId: tenant } }), eventsBefore, where);
    assert.equal(await allMessages(), messagesBefore, where);
    assert.equal(q.plainSends, 0, `${where}: no fallback send after a rollback`);
  }
});

test('concurrent enqueues, same-key races and replays: every job has exactly one message', async () => {
  const q = spyQueue();
  const distinct = await Promise.all(
    Array.from({ length: 10 }, (_, i) => enqueueJob({ prisma: db.prisma, queue: q }, gen(`burst ${i}`))),
  );
  const raced = await Promise.all(
    Array.from({ length: 6 }, () =>
      enqueueJob({ prisma: db.prisma, queue: q }, gen('same key', { idempotencyKey: 'k-race' })),
    ),
  );
  assert.equal(new Set(raced.map((j) => j.id)).size, 1);
  const replay = await enqueueJob(
    { prisma: db.prisma, queue: q },
    gen('same key', { idempotencyKey: 'k-race' }),
  );
  assert.equal(replay.id, raced[0].id);
  await assert.rejects(
    enqueueJob({ prisma: db.prisma, queue: q }, gen('other input', { idempotencyKey: 'k-race' })),
    (e: unknown) => e instanceof AppError && e.code === 'CONFLICT',
  );
  for (const job of [...distinct, raced[0]]) assert.equal(await messagesFor(job.id), 1, job.id);
  // Nothing else anywhere: one message per committed job of the whole file.
  assert.equal(await allMessages(), await db.prisma.job.count());
  assert.equal(q.plainSends, 0);
});

test('QUOTA_EXCEEDED writes no job and no message', async () => {
  const small = (await db.prisma.tenant.create({ data: { name: 'small', monthlyImageQuota: 1 } })).id;
  const q = spyQueue();
  await enqueueJob({ prisma: db.prisma, queue: q }, gen('fits', { tenantId: small }));
  const messagesBefore = await allMessages();
  await assert.rejects(
    enqueueJob({ prisma: db.prisma, queue: q }, gen('too many', { tenantId: small })),
    (e: unknown) => e instanceof AppError && e.code === 'QUOTA_EXCEEDED',
  );
  assert.equal(await db.prisma.job.count({ where: { tenantId: small } }), 1);
  assert.equal(await allMessages(), messagesBefore);
});

test("a consumer receives the committed message with the job's queue token as its key", async () => {
  const job = await enqueueJob({ prisma: db.prisma, queue }, gen('deliver me'));
  const seen: Delivery<HarmonJobPayload>[] = [];
  let done!: () => void;
  const got = new Promise<void>((resolve) => {
    done = resolve;
  });
  const consumer = queue.consume(async (d) => {
    seen.push(d);
    if (d.payload.jobId === job.id) done();
  });
  try {
    await Promise.race([
      got,
      new Promise((_, reject) => setTimeout(() => reject(new Error('no delivery within 10 s')), 10_000)),
    ]);
  } finally {
    await consumer.stop({ mode: 'release' });
  }
  const mine = seen.filter((d) => d.payload.jobId === job.id);
  assert.equal(mine[0]?.key, job.queueToken, "the message carries the job's queue token");
  assert.equal(mine.length, 1);
  assert.deepEqual(mine[0].payload, { jobId: job.id, tenantId: tenant });
});
