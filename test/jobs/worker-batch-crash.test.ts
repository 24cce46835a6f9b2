/**
 * Batching and crash safety with real `harmon worker` processes (WORKER_MAX_BATCH=4) on the REAL
 * tiny model, real Postgres, s3rver and pg-boss: SIGKILL of the worker mid-batch -> a second
 * worker finishes all 4 jobs, each exactly once (one output, one UsageRecord, one RESULT).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { JobEventRecord } from '../../src/events/job-events.ts';
import { enqueueJob } from '../../src/jobs/enqueue.ts';
import { exited, type Harmon, killAll, pidRunningJob, startHarmon } from '../deploy/processes.ts';
import { collectEvents, type WorkerFixture, workerFixture } from './worker-fixture.ts';

let fx: WorkerFixture;
let tenantId: string;
const started: Harmon[] = [];

before(async () => {
  fx = await workerFixture();
  tenantId = (await fx.db.prisma.tenant.create({ data: { name: 'batch-crash', maxConcurrentJobs: 4 } })).id;
});
after(async () => {
  await killAll(started);
  await fx?.close();
});

/**
 * `harmon worker` with batching on. A short lease (and lease check) bounds how long a message the
 * killed worker held but had not started (still gathering) stays with it.
 */
async function startWorker(): Promise<Harmon> {
  const w = await startHarmon(
    ['worker', '--visibility-timeout', '15', '--maintenance-interval', '1'],
    { ...fx.env, WORKER_MAX_BATCH: '4' },
    /harmon worker ready/,
    90_000,
  );
  started.push(w);
  return w;
}

const trace = (events: JobEventRecord[]) => events.map((e) => `${e.type}:${e.payload.status}`).join(' ');

test('SIGKILL mid-batch: a second worker finishes all 4 jobs, each exactly once', async (t) => {
  // Enqueued before the worker starts: its first fetch delivers all four.
  const jobs: Awaited<ReturnType<typeof enqueueJob>>[] = [];
  for (const seed of [31, 32, 33, 34])
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
      // Kill once the worker is running a batch: it has CLAIMED at least two jobs (RUNNING, and
      // the victim holds their locks). A lock alone is not a claim: the next batch takes its
      // jobs' locks before claiming them.
      let claimed = 0;
      for (const j of jobs) {
        const row = await fx.db.prisma.job.findUniqueOrThrow({ where: { id: j.id } });
        if (row.status === 'RUNNING' && (await pidRunningJob(fx.db.url, j.id, [victim.pid])) === victim.pid)
          claimed++;
      }
      if (claimed >= 2 && !killedBatch) {
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
      timer = setTimeout(() => reject(new Error('the worker never ran 2+ jobs at once')), 120_000);
    }),
  ]).finally(() => clearTimeout(timer));
  assert.equal((await exited(victim.child)).signal, 'SIGKILL');
  // With the victim gone, its claimed and unfinished jobs are exactly the RUNNING rows.
  const rowsAtKill = await fx.db.prisma.job.findMany({ where: { id: { in: jobs.map((j) => j.id) } } });
  const cut = new Set(rowsAtKill.filter((r) => r.status === 'RUNNING').map((r) => r.id));
  const doneBefore = new Set(rowsAtKill.filter((r) => r.status === 'SUCCEEDED').map((r) => r.id));
  assert.ok(cut.size >= 2, `killed mid-batch: ${rowsAtKill.map((r) => r.status).join(' ')}`);
  t.diagnostic(`killed while running a batch: ${cut.size} jobs cut, ${doneBefore.size} already done`);

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
