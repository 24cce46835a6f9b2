/**
 * Crash safety with real `harmon worker` child processes on the REAL tiny model, real Postgres,
 * s3rver and the pg-boss queue, with the DEFAULT lease (120 s): SIGKILL mid-job -> another worker
 * runs it again within 30 s (measured) and finishes it exactly once; SIGTERM -> the running job is
 * released (short grace) or finished (long grace) and the process exits cleanly; SIGSTOP -> the
 * frozen worker's job is taken over and finished once, and the worker, resumed, drops its attempt.
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
  tenantId = (await fx.db.prisma.tenant.create({ data: { name: 'crash', maxConcurrentJobs: 4 } })).id;
});
after(async () => {
  await killAll(started);
  await fx?.close();
});

/** Starts `harmon worker` (default lease) and resolves once it pulls from the queue. */
async function startWorker(graceMs: number, extra: string[] = [], env = fx.env): Promise<Harmon> {
  const w = await startHarmon(
    ['worker', '--grace-ms', String(graceMs), ...extra],
    env,
    /harmon worker ready/,
    90_000,
  );
  started.push(w);
  return w;
}

const generate = (prompt: string, steps: number, seed: number) =>
  enqueueJob(
    { prisma: fx.db.prisma, queue: fx.queue },
    { tenantId, kind: 'GENERATE', modelId: fx.modelId, input: { prompt, size: 128, steps, seed } },
  );

/** Streams the job's events; `onFirstProgress` fires once, on the first PROGRESS event. */
function follow(jobId: string, onFirstProgress: () => void, timeoutMs = 120_000): Promise<JobEventRecord[]> {
  let fired = false;
  return collectEvents(fx.bus, tenantId, jobId, timeoutMs, (e) => {
    if (e.type === 'PROGRESS' && !fired) {
      fired = true;
      onFirstProgress();
    }
  });
}

const trace = (events: JobEventRecord[]) => events.map((e) => `${e.type}:${e.payload.status}`).join(' ');
const runs = (events: JobEventRecord[]) =>
  events.filter((e) => e.type === 'STATUS' && e.payload.status === 'RUNNING');

async function assertFinishedOnce(jobId: string, attempts: number): Promise<void> {
  const job = await fx.db.prisma.job.findUniqueOrThrow({ where: { id: jobId } });
  assert.equal(job.status, 'SUCCEEDED');
  assert.equal(job.attempts, attempts);
  assert.equal(await fx.db.prisma.asset.count({ where: { jobId, role: 'OUTPUT' } }), 1);
  assert.equal(await fx.db.prisma.usageRecord.count({ where: { jobId } }), 1);
  const results = await fx.db.prisma.jobEvent.findMany({ where: { jobId, type: { in: ['RESULT'] } } });
  assert.equal(results.length, 1, 'exactly one RESULT event');
  const last = await fx.db.prisma.jobEvent.findFirstOrThrow({ where: { jobId }, orderBy: { seq: 'desc' } });
  assert.deepEqual([last.type, (last.payload as { status: string }).status], ['STATUS', 'SUCCEEDED']);
}

test('SIGKILL mid-job: another worker runs the job again within 30 s (default lease) and finishes it exactly once', async (t) => {
  const workers = await Promise.all([startWorker(25_000), startWorker(25_000)]);
  const job = await generate('kill -9', 64, 5);
  let killedAt = 0;
  let victim: Harmon | undefined;
  let rerunAt = 0;
  const events = await collectEvents(fx.bus, tenantId, job.id, 120_000, (e) => {
    if (e.type === 'PROGRESS' && !victim && killedAt === 0) {
      killedAt = -1; // once
      void pidRunningJob(
        fx.db.url,
        job.id,
        workers.map((w) => w.pid),
      ).then((pid) => {
        victim = workers.find((w) => w.pid === pid);
        assert.ok(victim, 'one of the workers holds the job lock');
        victim.child.kill('SIGKILL');
        killedAt = Date.now();
      });
    }
    if (e.type === 'STATUS' && e.payload.status === 'RUNNING' && e.seq > 2 && rerunAt === 0)
      rerunAt = Date.now();
  });
  assert.equal(events.at(-1)?.payload.status, 'SUCCEEDED', trace(events));
  assert.equal(runs(events).length, 2, `two runs: ${trace(events)}`);
  const recoveryMs = rerunAt - killedAt;
  t.diagnostic(`killed worker's job running again on the other worker after ${recoveryMs} ms`);
  assert.ok(killedAt > 0 && recoveryMs > 0 && recoveryMs < 30_000, `re-run after ${recoveryMs} ms`);
  await assertFinishedOnce(job.id, 2);
  assert.deepEqual((await exited((victim as Harmon).child)).signal, 'SIGKILL');
  const survivor = workers.find((w) => w !== victim) as Harmon;
  survivor.child.kill('SIGTERM');
  assert.equal((await exited(survivor.child)).code, 0);
});

test('SIGTERM with a short grace releases the running job (back to QUEUED) and exits 0; another worker finishes it', async () => {
  const w = await startWorker(0);
  const job = await generate('sigterm', 64, 6);
  let code: Promise<number | null> | undefined;
  const requeued = new Promise<void>((resolve) => {
    void collectEvents(fx.bus, tenantId, job.id, 120_000, (e) => {
      if (e.type === 'PROGRESS' && !code) {
        w.child.kill('SIGTERM');
        code = exited(w.child).then((x) => x.code);
      }
      if (code && e.type === 'STATUS' && e.payload.status === 'QUEUED' && e.seq > 1) resolve();
    });
  });
  await requeued;
  assert.equal(await code, 0, 'graceful exit');
  const released = await fx.db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
  assert.equal(released.status, 'QUEUED');
  assert.equal(await fx.db.prisma.asset.count({ where: { jobId: job.id, role: 'OUTPUT' } }), 0);

  const next = await startWorker(25_000);
  const events = await collectEvents(fx.bus, tenantId, job.id, 120_000);
  assert.equal(events.at(-1)?.payload.status, 'SUCCEEDED');
  await assertFinishedOnce(job.id, 2);

  // SIGTERM with a long grace: the running job finishes first, then the process exits 0.
  const job2 = await generate('finish', 32, 7);
  let code2: Promise<number | null> | undefined;
  await follow(job2.id, () => {
    next.child.kill('SIGTERM');
    code2 = exited(next.child).then((x) => x.code);
  });
  assert.equal(await code2, 0);
  await assertFinishedOnce(job2.id, 1);
});

test('SIGSTOP mid-job: the frozen worker is taken over once silent past its lease; resumed, it drops its attempt', async () => {
  // A short lease keeps the test short; logs on, to see the resumed worker say what it did.
  const args = ['--visibility-timeout', '8', '--maintenance-interval', '1'];
  const env = { ...fx.env, LOG_LEVEL: 'warn' };
  const workers = await Promise.all([startWorker(25_000, args, env), startWorker(25_000, args, env)]);
  const job = await generate('sigstop', 64, 8);
  let frozen: Harmon | undefined;
  const events = await follow(job.id, () => {
    void pidRunningJob(
      fx.db.url,
      job.id,
      workers.map((w) => w.pid),
    ).then((pid) => {
      frozen = workers.find((w) => w.pid === pid);
      assert.ok(frozen, 'one of the workers holds the job lock');
      frozen.child.kill('SIGSTOP');
    });
  });
  if (events.at(-1)?.payload.status !== 'SUCCEEDED')
    for (const w of workers) console.log('DEBUG', w.pid, w === frozen, w.output());
  assert.equal(events.at(-1)?.payload.status, 'SUCCEEDED', trace(events));
  const stopped = frozen as Harmon;
  stopped.child.kill('SIGCONT');
  // Its next write to the job (a step, a heartbeat) finds the row claimed by the other attempt.
  const until = Date.now() + 60_000;
  while (!stopped.output().includes('this attempt lost the job') && Date.now() < until)
    await new Promise((r) => setTimeout(r, 200));
  assert.match(stopped.output(), /this attempt lost the job/);
  await assertFinishedOnce(job.id, 2);
  assert.equal(stopped.child.exitCode, null, 'the resumed worker lives on');

  // Both keep working: a new job ends SUCCEEDED, and nothing is left QUEUED or RUNNING.
  const job2 = await generate('after the storm', 8, 9);
  const after2 = await collectEvents(fx.bus, tenantId, job2.id, 120_000);
  assert.equal(after2.at(-1)?.payload.status, 'SUCCEEDED', trace(after2));
  assert.equal(await fx.db.prisma.job.count({ where: { status: { in: ['QUEUED', 'RUNNING'] } } }), 0);
  for (const w of workers) w.child.kill('SIGTERM');
  for (const w of workers) assert.equal((await exited(w.child)).code, 0, w.output().slice(-2000));
});
