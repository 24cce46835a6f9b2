/**
 * Crash safety with real `harmon worker` child processes on the REAL tiny model, real Postgres,
 * s3rver and the pg-boss queue: SIGKILL mid-job -> re-delivered and finished exactly once;
 * SIGTERM -> the running job is released (short grace) or finished (long grace) and the process
 * exits cleanly.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import type { JobEventRecord } from '../../src/events/job-events.ts';
import { enqueueJob } from '../../src/jobs/enqueue.ts';
import { collectEvents, type WorkerFixture, workerFixture } from './worker-fixture.ts';

let fx: WorkerFixture;
let tenantId: string;
const children = new Set<ChildProcess>();

before(async () => {
  fx = await workerFixture({ visibilityTimeoutSeconds: 3 });
  tenantId = (await fx.db.prisma.tenant.create({ data: { name: 'crash', maxConcurrentJobs: 4 } })).id;
});
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await fx?.close();
});

/** Starts `harmon worker` and resolves once it pulls from the queue. */
async function startWorker(graceMs: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli/main.ts',
      'worker',
      '--visibility-timeout',
      '3',
      '--maintenance-interval',
      '1',
      '--grace-ms',
      String(graceMs),
    ],
    { env: fx.env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(child);
  child.on('exit', () => children.delete(child));
  let out = '';
  child.stderr?.on('data', (d) => (out += d));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start: ${out}`)), 60_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d;
      if (out.includes('harmon worker ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => reject(new Error(`worker exited early (${code}): ${out}`)));
  });
  return child;
}

const exited = (child: ChildProcess) =>
  new Promise<number | null>((resolve) =>
    child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code)),
  );

async function modelId(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  return (JSON.parse(await readFile(`${fx.modelDir}/manifest.json`, 'utf8')) as { modelId: string }).modelId;
}

/** Streams the job's events; `onFirstProgress` fires once, on the first PROGRESS event. */
function follow(jobId: string, onFirstProgress: () => void): Promise<JobEventRecord[]> {
  let fired = false;
  return collectEvents(fx.bus, tenantId, jobId, 90_000, (e) => {
    if (e.type === 'PROGRESS' && !fired) {
      fired = true;
      onFirstProgress();
    }
  });
}

async function assertFinishedOnce(jobId: string, attempts: number): Promise<void> {
  const job = await fx.db.prisma.job.findUniqueOrThrow({ where: { id: jobId } });
  assert.equal(job.status, 'SUCCEEDED');
  assert.equal(job.attempts, attempts);
  assert.equal(await fx.db.prisma.asset.count({ where: { jobId, role: 'OUTPUT' } }), 1);
  assert.equal(await fx.db.prisma.usageRecord.count({ where: { jobId } }), 1);
  const terminal = await fx.db.prisma.jobEvent.findMany({ where: { jobId, type: { in: ['RESULT'] } } });
  assert.equal(terminal.length, 1, 'exactly one RESULT event');
}

test('SIGKILL mid-job: the job is re-delivered to another worker and finished exactly once', async () => {
  const id = await modelId();
  const a = await startWorker(25_000);
  const job = await enqueueJob(
    { prisma: fx.db.prisma, queue: fx.queue },
    { tenantId, kind: 'GENERATE', modelId: id, input: { prompt: 'kill -9', size: 128, steps: 64, seed: 5 } },
  );
  let b: ChildProcess | undefined;
  const events = await follow(job.id, () => {
    a.kill('SIGKILL');
    void startWorker(25_000).then((w) => (b = w));
  });
  assert.equal(
    events.at(-1)?.payload.status,
    'SUCCEEDED',
    events.map((e) => `${e.type}:${e.payload.status}`).join(' '),
  );
  assert.equal(
    events.filter((e) => e.type === 'STATUS' && e.payload.status === 'RUNNING').length,
    2,
    'two runs',
  );
  await assertFinishedOnce(job.id, 2);
  b?.kill('SIGKILL');
  if (b) await exited(b);
});

test('SIGTERM with a short grace releases the running job (back to QUEUED) and exits 0; another worker finishes it', async () => {
  const id = await modelId();
  const w = await startWorker(0);
  const job = await enqueueJob(
    { prisma: fx.db.prisma, queue: fx.queue },
    { tenantId, kind: 'GENERATE', modelId: id, input: { prompt: 'sigterm', size: 128, steps: 64, seed: 6 } },
  );
  let code: Promise<number | null> | undefined;
  const requeued = new Promise<void>((resolve) => {
    void collectEvents(fx.bus, tenantId, job.id, 90_000, (e) => {
      if (e.type === 'PROGRESS' && !code) {
        w.kill('SIGTERM');
        code = exited(w);
      }
      if (e.type === 'STATUS' && e.payload.status === 'QUEUED' && e.seq > 1) resolve();
    });
  });
  await requeued;
  assert.equal(await code, 0, 'graceful exit');
  const released = await fx.db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
  assert.equal(released.status, 'QUEUED');
  assert.equal(await fx.db.prisma.asset.count({ where: { jobId: job.id, role: 'OUTPUT' } }), 0);

  const next = await startWorker(25_000);
  const events = await collectEvents(fx.bus, tenantId, job.id, 90_000);
  assert.equal(events.at(-1)?.payload.status, 'SUCCEEDED');
  await assertFinishedOnce(job.id, 2);

  // SIGTERM with a long grace: the running job finishes first, then the process exits 0.
  const job2 = await enqueueJob(
    { prisma: fx.db.prisma, queue: fx.queue },
    { tenantId, kind: 'GENERATE', modelId: id, input: { prompt: 'finish', size: 128, steps: 32, seed: 7 } },
  );
  let code2: Promise<number | null> | undefined;
  await follow(job2.id, () => {
    next.kill('SIGTERM');
    code2 = exited(next);
  });
  assert.equal(await code2, 0);
  await assertFinishedOnce(job2.id, 1);
});
