/**
 * The job lifecycle's promises on real Postgres, counted from Prisma's query log: each transition
 * locks the Job row exactly once (a successful attempt used to lock it five times per write path),
 * the row read under that lock is how a running attempt learns of a cancel, and a run that another
 * attempt took over (or that ended elsewhere) can write nothing at all.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { PrismaClient } from '../../src/generated/prisma/client.ts';
import { enqueueJob } from '../../src/jobs/enqueue.ts';
import {
  claimJob,
  endRun,
  heartbeat,
  JobLostError,
  type Run,
  recordProgress,
  recordText,
  requestCancel,
  requeueRun,
  succeedRun,
} from '../../src/jobs/job-lifecycle.ts';
import { type FreshDatabase, freshDatabase, queryLoggingPrisma } from '../helpers/pg.ts';

let db: FreshDatabase;
let prisma: PrismaClient;
let tenantId: string;
const log: string[] = [];
const queue = { send: async () => 'm' };

before(async () => {
  db = await freshDatabase();
  prisma = queryLoggingPrisma(db, log);
  tenantId = (await prisma.tenant.create({ data: { name: 'life', maxConcurrentJobs: 5 } })).id;
});
after(async () => {
  await prisma?.$disconnect();
  await db?.drop();
});

/** Row locks (SELECT ... FOR UPDATE on "Job") taken while `run` runs. */
async function rowLocks(run: () => Promise<unknown>): Promise<number> {
  log.length = 0;
  await run();
  return log.filter((q) => /FROM "Job" .*FOR UPDATE/.test(q)).length;
}

async function claimed(prompt: string): Promise<Run> {
  const job = await enqueueJob(
    { prisma, queue },
    { tenantId, kind: 'GENERATE', modelId: 'm', input: { prompt, size: 64, steps: 2 } },
  );
  const c = await claimJob(
    prisma,
    { jobId: job.id, tenantId, key: job.queueToken as string },
    { queue, maxAttempts: 3, slotRetrySeconds: 1 },
  );
  assert.equal(c.kind, 'run');
  return (c as { run: Run }).run;
}

const outcome = { assets: [], usage: { images: 0, tokens: 0, gpuMs: 5 } };

test('one row lock per transition: claim, every progress write, heartbeat-free success', async () => {
  let run!: Run;
  assert.equal(await rowLocks(async () => (run = await claimed('count'))), 1, 'claim');
  assert.equal(
    await rowLocks(() => recordProgress(prisma, run, 1, 2)),
    1,
    'progress (event appended under it)',
  );
  assert.equal(await rowLocks(() => recordProgress(prisma, run, 2, 2)), 1, 'progress');
  assert.equal(await rowLocks(() => recordText(prisma, run, 'hi')), 1, 'text');
  assert.equal(await rowLocks(() => heartbeat(prisma, run)), 0, 'a heartbeat is one fenced UPDATE');
  assert.equal(
    await rowLocks(() => succeedRun(prisma, run, outcome)),
    1,
    'succeed (RESULT + STATUS under it)',
  );
  const events = await prisma.jobEvent.findMany({ where: { jobId: run.job.id }, orderBy: { seq: 'asc' } });
  assert.deepEqual(
    events.map((e) => [e.seq, e.type]),
    [
      [1, 'STATUS'],
      [2, 'STATUS'],
      [3, 'PROGRESS'],
      [4, 'PROGRESS'],
      [5, 'TEXT_DELTA'],
      [6, 'RESULT'],
      [7, 'STATUS'],
    ],
  );
});

test('a cancel request reaches the running attempt through its next write to the row', async () => {
  const run = await claimed('cancel');
  assert.deepEqual(await recordProgress(prisma, run, 1, 2), { cancelRequested: false });
  assert.equal((await requestCancel(prisma, tenantId, run.job.id)).status, 'RUNNING');
  assert.deepEqual(await recordProgress(prisma, run, 2, 2), { cancelRequested: true });
  assert.deepEqual(await heartbeat(prisma, run), { cancelRequested: true });
  await endRun(prisma, run, 'CANCELED', { code: 'CANCELED', message: 'canceled' });
  assert.equal((await prisma.job.findUniqueOrThrow({ where: { id: run.job.id } })).status, 'CANCELED');
});

test('a run taken over by a newer claim, or ended elsewhere, writes nothing (JobLostError)', async () => {
  const first = await claimed('fenced');
  // The first worker froze; a second claim takes the job over (it holds the lock by then).
  const again = await claimJob(
    prisma,
    {
      jobId: first.job.id,
      tenantId,
      key: (await prisma.job.findUniqueOrThrow({ where: { id: first.job.id } })).queueToken as string,
    },
    { queue, maxAttempts: 3, slotRetrySeconds: 1 },
  );
  assert.equal(again.kind, 'run');
  const second = (again as { run: Run }).run;
  assert.equal(second.attempt, first.attempt + 1);
  const before = await prisma.jobEvent.count({ where: { jobId: first.job.id } });
  const lost = (e: unknown) => e instanceof JobLostError && e.status === 'RUNNING';
  await assert.rejects(recordProgress(prisma, first, 1, 2), lost);
  await assert.rejects(heartbeat(prisma, first), lost);
  await assert.rejects(requeueRun(prisma, first, 'woke up'), lost);
  await assert.rejects(succeedRun(prisma, first, outcome), lost);
  assert.equal(await prisma.jobEvent.count({ where: { jobId: first.job.id } }), before, 'no event written');
  const row = await prisma.job.findUniqueOrThrow({ where: { id: first.job.id } });
  assert.deepEqual([row.status, row.attempts], ['RUNNING', second.attempt]);
  assert.equal(await prisma.usageRecord.count({ where: { jobId: first.job.id } }), 0);

  await succeedRun(prisma, second, outcome);
  await assert.rejects(
    endRun(prisma, second, 'FAILED', { code: 'INTERNAL', message: 'late' }),
    (e: unknown) => e instanceof JobLostError && e.status === 'SUCCEEDED',
  );
});
