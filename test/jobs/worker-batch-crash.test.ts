/**
 * Batching and crash safety with real `harmon worker` processes (WORKER_MAX_BATCH=4) on the REAL
 * tiny model, real Postgres, s3rver and pg-boss: SIGKILL of the worker mid-batch -> a second
 * worker finishes every job, each exactly once (one output, one UsageRecord, one RESULT): the
 * batch's jobs and those the killed worker held waiting for the next batch, which come back
 * after their short waiting lease, not after the full one.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { JobEventRecord } from '../../src/events/job-events.ts';
import { enqueueJob } from '../../src/jobs/enqueue.ts';
import { exited, type Harmon, killAll, pidRunningJob, startHarmon } from '../deploy/processes.ts';
import { collectEvents, type WorkerFixture, workerFixture } from './worker-fixture.ts';

/** The full queue lease: far longer than the waiting lease, so the test can tell them apart. */
const LEASE_SECONDS = 120;

let fx: WorkerFixture;
let tenantId: string;
const started: Harmon[] = [];

before(async () => {
  fx = await workerFixture({ visibilityTimeoutSeconds: LEASE_SECONDS });
  tenantId = (await fx.db.prisma.tenant.create({ data: { name: 'batch-crash', maxConcurrentJobs: 8 } })).id;
});
after(async () => {
  await killAll(started);
  await fx?.close();
});

/** `harmon worker` with batching on: it holds up to 8 messages (a batch running, one gathering). */
async function startWorker(): Promise<Harmon> {
  const w = await startHarmon(
    ['worker', '--visibility-timeout', String(LEASE_SECONDS), '--maintenance-interval', '1'],
    { ...fx.env, WORKER_MAX_BATCH: '4' },
    /harmon worker ready/,
    90_000,
  );
  started.push(w);
  return w;
}

/** How many of these jobs' live queue messages (their queueToken's) a consumer holds. */
async function heldMessages(jobIds: string[]): Promise<number> {
  const rows = await fx.db.prisma.$queryRawUnsafe<{ n: number }[]>(
    `SELECT count(*)::int AS n FROM "${fx.queueOptions.schema}".job q JOIN "Job" j ON q.data->>'k' = j."queueToken"::text
     WHERE q.state = 'active' AND j.id::text = ANY($1::text[])`,
    jobIds,
  );
  return rows[0]?.n ?? 0;
}

const trace = (events: JobEventRecord[]) => events.map((e) => `${e.type}:${e.payload.status}`).join(' ');

test('SIGKILL mid-batch: a second worker finishes the batch and the jobs waiting for the next one, each exactly once', async (t) => {
  // Enqueued before the worker starts: its first fetch delivers all eight (it holds up to two
  // batches' worth), and a batch takes four.
  const jobs: Awaited<ReturnType<typeof enqueueJob>>[] = [];
  for (const seed of [31, 32, 33, 34, 35, 36, 37, 38])
    jobs.push(
      await enqueueJob(
        { prisma: fx.db.prisma, queue: fx.queue },
        {
          tenantId,
          kind: 'GENERATE',
          modelId: fx.modelId,
          input: { prompt: `kill ${seed}`, size: 128, steps: 64, seed },
        },
      ),
    );
  const victim = await startWorker();
  let killedBatch = false;
  let checking = false;
  const killed = new Promise<void>((resolve) => {
    const onProgress = async () => {
      if (checking || killedBatch) return;
      checking = true;
      // Kill once the worker is running a batch, it has CLAIMED at least two jobs (RUNNING, and
      // the victim holds their locks; a lock alone is not a claim: a batch locks each job just
      // before claiming it), and holds at least one more waiting for its next batch.
      let claimed = 0;
      const queued: string[] = [];
      for (const j of jobs) {
        const row = await fx.db.prisma.job.findUniqueOrThrow({ where: { id: j.id } });
        if (row.status === 'QUEUED') queued.push(j.id);
        if (row.status === 'RUNNING' && (await pidRunningJob(fx.db.url, j.id, [victim.pid])) === victim.pid)
          claimed++;
      }
      if (claimed >= 2 && (await heldMessages(queued)) >= 1 && !killedBatch) {
        killedBatch = true;
        victim.child.kill('SIGKILL');
        resolve();
      }
      checking = false;
    };
    for (const j of jobs)
      void collectEvents(fx.bus, tenantId, j.id, 180_000, (e) => {
        if (e.type === 'PROGRESS') void onProgress();
      });
  });
  const feeds = jobs.map((j) => collectEvents(fx.bus, tenantId, j.id, 180_000));
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    killed,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('the worker never ran 2+ jobs while holding more')), 120_000);
    }),
  ]).finally(() => clearTimeout(timer));
  assert.equal((await exited(victim.child)).signal, 'SIGKILL');
  // With the victim gone, its claimed and unfinished jobs are exactly the RUNNING rows.
  const rowsAtKill = await fx.db.prisma.job.findMany({ where: { id: { in: jobs.map((j) => j.id) } } });
  const cut = new Set(rowsAtKill.filter((r) => r.status === 'RUNNING').map((r) => r.id));
  const doneBefore = new Set(rowsAtKill.filter((r) => r.status === 'SUCCEEDED').map((r) => r.id));
  assert.ok(cut.size >= 2, `killed mid-batch: ${rowsAtKill.map((r) => r.status).join(' ')}`);
  const waiting = rowsAtKill.filter((r) => r.status === 'QUEUED').map((r) => r.id);
  // The messages of the jobs it held waiting are still leased to the dead worker until their
  // waiting lease runs out (WAITING_LEASE_SECONDS; the queue notices within a maintenance
  // interval, 1 s here), not the full lease.
  const killedAt = Date.now();
  const held = await heldMessages(waiting);
  assert.ok(held >= 1, 'the killed worker held jobs waiting for its next batch');
  while ((await heldMessages(waiting)) > 0 && Date.now() - killedAt < LEASE_SECONDS * 1000)
    await new Promise((r) => setTimeout(r, 250));
  const backAfterMs = Date.now() - killedAt;
  t.diagnostic(
    `killed mid-batch: ${cut.size} jobs cut, ${doneBefore.size} already done, ${held} held waiting (back after ${backAfterMs} ms)`,
  );
  assert.ok(backAfterMs < (LEASE_SECONDS * 1000) / 2, `waiting jobs came back after ${backAfterMs} ms`);

  const rescuer = await startWorker();
  const events = await Promise.all(feeds);
  for (const [i, job] of jobs.entries()) {
    const label = `job ${i}: ${trace(events[i])}`;
    assert.equal(events[i].at(-1)?.payload.status, 'SUCCEEDED', label);
    const row = await fx.db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
    // A job cut by the kill ran twice (the second run wrote everything); a job the victim had not
    // claimed ran once, on the rescuer, and one it had finished was not run again.
    assert.equal(row.status, 'SUCCEEDED', label);
    assert.equal(row.attempts, cut.has(job.id) ? 2 : 1, label);
    const runs = events[i].filter((e) => e.type === 'STATUS' && e.payload.status === 'RUNNING').length;
    assert.equal(runs, row.attempts, label);
    assert.equal(await fx.db.prisma.asset.count({ where: { jobId: job.id, role: 'OUTPUT' } }), 1, label);
    assert.equal(await fx.db.prisma.usageRecord.count({ where: { jobId: job.id } }), 1, label);
    assert.equal(await fx.db.prisma.jobEvent.count({ where: { jobId: job.id, type: 'RESULT' } }), 1, label);
    const last = await fx.db.prisma.jobEvent.findFirstOrThrow({
      where: { jobId: job.id },
      orderBy: { seq: 'desc' },
    });
    assert.deepEqual([last.type, (last.payload as { status: string }).status], ['STATUS', 'SUCCEEDED']);
  }
  assert.equal(await fx.db.prisma.job.count({ where: { status: { in: ['QUEUED', 'RUNNING'] } } }), 0);
  rescuer.child.kill('SIGTERM');
  assert.equal((await exited(rescuer.child)).code, 0, rescuer.output().slice(-2000));
});
