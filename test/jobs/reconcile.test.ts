/**
 * The queue check (src/jobs/reconcile.ts) on both real backends: pg-boss on real Postgres and SQS
 * on fauxqs (loopback). Every unfinished job ends a pass with exactly one live message (one that
 * carries its queue token), a dead-lettered job ends FAILED, a dead worker's job is handed on and
 * a live worker's is left alone.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import type { Job } from '../../src/generated/prisma/client.ts';
import { enqueueJob } from '../../src/jobs/enqueue.ts';
import { claimJob, isLiveMessage } from '../../src/jobs/job-lifecycle.ts';
import { JobLocks } from '../../src/jobs/job-locks.ts';
import { PgBossQueue } from '../../src/jobs/queue/pg-boss-queue.ts';
import type { HarmonJobPayload, JobQueue } from '../../src/jobs/queue/port.ts';
import { SqsQueue } from '../../src/jobs/queue/sqs-queue.ts';
import { reconcileJobs } from '../../src/jobs/reconcile.ts';
import { type Fauxqs, startFauxqs } from '../helpers/fauxqs.ts';
import { type FreshDatabase, freshDatabase } from '../helpers/pg.ts';

let db: FreshDatabase;
let tenantId: string;

before(async () => {
  db = await freshDatabase();
  tenantId = (await db.prisma.tenant.create({ data: { name: 'rec', maxConcurrentJobs: 10 } })).id;
});
after(() => db?.drop());

const newJob = (queue: JobQueue<HarmonJobPayload>, prompt: string) =>
  enqueueJob(
    { prisma: db.prisma, queue },
    { tenantId, kind: 'GENERATE', modelId: 'm', input: { prompt, size: 64, steps: 2 } },
  );
const row = (id: string) => db.prisma.job.findUniqueOrThrow({ where: { id } });
const reconcile = (queue: JobQueue<HarmonJobPayload>, staleSeconds?: number, now?: Date) =>
  reconcileJobs({ prisma: db.prisma, queue, leaseSeconds: 30 }, { staleSeconds, now });

/** Fails the job's live message until the queue dead-letters it (what old workers' busy retries did). */
async function deadLetter(queue: JobQueue<HarmonJobPayload>, job: Job): Promise<void> {
  const consumer = queue.consume(async () => {
    throw new Error('busy');
  });
  const isMine = async () =>
    (await queue.listDeadLetters()).some((l) => l.payload.jobId === job.id && l.key === job.queueToken);
  const until = Date.now() + 20_000;
  while (!(await isMine()) && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
  await consumer.stop({ mode: 'release' });
  assert.ok(await isMine(), 'the live message was dead-lettered');
}

/** Ends what earlier tests left unfinished, so each test sees only its own jobs. */
const endLeftovers = () =>
  db.prisma.job.updateMany({
    where: { status: { in: ['QUEUED', 'RUNNING'] } },
    data: { status: 'CANCELED' },
  });

describe('pg-boss: exact, from the queue table', () => {
  let queue: PgBossQueue<HarmonJobPayload>;
  const schema = () => `${db.schema}_boss`;
  before(async () => {
    queue = new PgBossQueue<HarmonJobPayload>({
      connectionString: db.url,
      schema: schema(),
      pollIntervalMs: 500,
      maintenanceIntervalSeconds: 1,
      poolMax: 2,
      policy: { maxAttempts: 2, retryDelaySeconds: 0, retryBackoff: false, visibilityTimeoutSeconds: 30 },
    });
    await queue.start();
  });
  after(() => queue?.close());

  const live = async (job: Job) =>
    (await queue.countLive([job.queueToken as string])).get(job.queueToken as string) ?? 0;

  test('a job whose message was lost gets exactly one new one; a second pass changes nothing', async () => {
    const job = await newJob(queue, 'lost');
    assert.equal(await live(job), 1);
    await db.prisma.$executeRawUnsafe(`DELETE FROM "${schema()}".job WHERE data->>'k' = $1`, job.queueToken);
    assert.equal(await live(job), 0);
    const first = await reconcile(queue);
    assert.deepEqual(first.resent, [job.id]);
    const moved = await row(job.id);
    assert.notEqual(moved.queueToken, job.queueToken);
    assert.equal(await live(moved), 1, 'one live message for the new token');
    assert.deepEqual(await reconcile(queue), { failed: [], reclaimed: [], resent: [] });
    assert.equal(await live(moved), 1);
  });

  test('a dead-lettered job ends FAILED, its letter drained; a job that had ended stays as it was', async () => {
    await endLeftovers();
    const job = await newJob(queue, 'poison');
    await deadLetter(queue, job);
    const report = await reconcile(queue);
    assert.deepEqual(report.failed, [job.id]);
    const failed = await row(job.id);
    assert.deepEqual([failed.status, failed.errorCode], ['FAILED', 'INTERNAL']);
    const events = await db.prisma.jobEvent.findMany({ where: { jobId: job.id }, orderBy: { seq: 'asc' } });
    assert.deepEqual(
      events.map((e) => e.type),
      ['STATUS', 'ERROR', 'STATUS'],
    );
    assert.deepEqual(await queue.listDeadLetters(), []);
    assert.deepEqual((await reconcile(queue)).failed, []);
  });

  test("a RUNNING job whose worker's lock session died is handed on at once; a live worker's job is not", async () => {
    await endLeftovers();
    const job = await newJob(queue, 'crash');
    const dead = new JobLocks(db.url);
    const alive = new JobLocks(db.url);
    const other = await newJob(queue, 'alive');
    for (const [j, locks] of [
      [job, dead],
      [other, alive],
    ] as const) {
      assert.equal(await locks.tryLock(j.id), true);
      const claimed = await claimJob(
        db.prisma,
        { jobId: j.id, tenantId, key: j.queueToken as string },
        { queue, maxAttempts: 3, slotRetrySeconds: 1 },
      );
      assert.equal(claimed.kind, 'run');
    }
    assert.deepEqual((await reconcile(queue)).reclaimed, [], 'both workers hold their locks');
    await dead.close(); // the process dies: its session and lock go with it
    const report = await reconcile(queue);
    assert.deepEqual(report.reclaimed, [job.id]);
    const moved = await row(job.id);
    assert.equal(moved.status, 'RUNNING', 'it keeps its slot until the next worker claims it');
    assert.equal(await live(moved), 1);
    assert.equal(isLiveMessage(moved, job.queueToken as string), false, "the dead worker's message is stale");
    assert.equal((await row(other.id)).queueToken, other.queueToken);
    await alive.close();
  });
});

describe('SQS (fauxqs): by staleness and the dead-letter queue', () => {
  const policy = { maxAttempts: 2, visibilityTimeoutSeconds: 30, retryDelaySeconds: 0, retryBackoff: false };
  let fauxqs: Fauxqs;
  const open: SqsQueue<HarmonJobPayload>[] = [];
  before(async () => {
    fauxqs = await startFauxqs();
  });
  after(async () => {
    await Promise.all(open.map((q) => q.close()));
    await fauxqs?.close();
  });

  /** A fresh queue pair per test: a stopped consumer's long poll cannot take the next test's message. */
  async function makeQueue(): Promise<{ queue: SqsQueue<HarmonJobPayload>; queueUrl: string }> {
    await endLeftovers();
    const options = await fauxqs.queueOptions(`rec-${randomBytes(4).toString('hex')}`, policy);
    const queue = new SqsQueue<HarmonJobPayload>(options);
    open.push(queue);
    await queue.start();
    return { queue, queueUrl: options.queueUrl };
  }

  /** Takes every message now in the queue, as [jobId, key]. */
  async function takeMessages(queueUrl: string): Promise<string[][]> {
    const taken: string[][] = [];
    for (;;) {
      const out = await fauxqs.admin.send(
        new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 60 }),
      );
      if (!out.Messages?.length) return taken;
      for (const m of out.Messages) {
        const env = JSON.parse(m.Body ?? '{}') as { k: string; p: HarmonJobPayload };
        taken.push([env.p.jobId, env.k]);
      }
    }
  }

  test('a dead-lettered job ends FAILED and its letter is deleted', async () => {
    const { queue } = await makeQueue();
    const job = await newJob(queue, 'sqs poison');
    await deadLetter(queue, await row(job.id));
    assert.ok((await reconcile(queue)).failed.includes(job.id));
    assert.equal((await row(job.id)).status, 'FAILED');
    assert.deepEqual(await queue.listDeadLetters(), []);
  });

  test('a QUEUED job untouched past staleSeconds gets a new message; the old one is stale', async () => {
    const { queue, queueUrl } = await makeQueue();
    const job = await newJob(queue, 'sqs lost');
    const later = new Date(Date.now() + 600_000);
    const report = await reconcile(queue, 300, later);
    assert.ok(report.resent.includes(job.id));
    const moved = await row(job.id);
    const mine = (await takeMessages(queueUrl)).filter(([id]) => id === job.id);
    assert.equal(mine.length, 2, 'the original message and the new one');
    assert.deepEqual(
      mine.filter(([, key]) => isLiveMessage(moved, key)),
      [[job.id, moved.queueToken]],
      'exactly one of them is live',
    );
    assert.equal((await reconcile(queue, 300)).resent.includes(job.id), false, 'fresh again');
  });
});
