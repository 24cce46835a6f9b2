/**
 * Batching at the edges, on the REAL tiny model, real Postgres and s3rver: a worker stopped
 * mid-batch (SIGTERM's release) hands every job of the batch back to QUEUED and a job still
 * gathering goes back to the queue unclaimed, then a new worker finishes them all once; and the
 * same gathering over the SQS backend (fauxqs on loopback), where the queue cannot enqueue in the
 * job's transaction and a receive returns at most 10 messages.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createEngineRunner, type EngineRunner } from '../../src/jobs/engine-runner.ts';
import { enqueueJob } from '../../src/jobs/enqueue.ts';
import type { HarmonJobPayload, JobQueue } from '../../src/jobs/queue/port.ts';
import { SqsQueue } from '../../src/jobs/queue/sqs-queue.ts';
import type { JobRunner } from '../../src/jobs/runner.ts';
import { startWorkerService, type WorkerService } from '../../src/jobs/service.ts';
import { startFauxqs } from '../helpers/fauxqs.ts';
import { collectEvents, summary, type WorkerFixture, workerFixture } from './worker-fixture.ts';

let fx: WorkerFixture;
let engine: EngineRunner;
let runner: JobRunner;
let tenantId: string;
let modelId: string;
const batchSizes: number[] = [];

before(async () => {
  fx = await workerFixture();
  engine = await createEngineRunner([fx.modelDir]);
  modelId = engine.models()[0];
  runner = {
    ...engine,
    generateBatch: (model, items) => {
      batchSizes.push(items.length);
      return (engine.generateBatch as NonNullable<JobRunner['generateBatch']>)(model, items);
    },
  };
  tenantId = (await fx.db.prisma.tenant.create({ data: { name: 'stop', maxConcurrentJobs: 4 } })).id;
});
after(async () => {
  await engine?.close();
  await fx?.close();
});

const enqueue = (queue: JobQueue<HarmonJobPayload>, input: Record<string, unknown>) =>
  enqueueJob({ prisma: fx.db.prisma, queue }, { tenantId, kind: 'GENERATE', modelId, input });

/** A batching worker; the widened gather window only makes the one-batch observable robust. */
const start = (queue: WorkerService['queue'] | typeof fx.queueOptions): Promise<WorkerService> =>
  startWorkerService({
    prisma: fx.db.prisma,
    databaseUrl: fx.db.url,
    blobStore: fx.s3.blobStore,
    runner,
    queue,
    maxBatch: 4,
    webhooks: false,
    worker: { gatherMs: 1000 },
  });

/** Runs a batching worker until every job of `tenant` in `jobs` has ended SUCCEEDED, then stops it. */
async function runUntilSucceeded(
  queue: Parameters<typeof start>[0],
  tenant: string,
  jobs: { id: string }[],
): Promise<void> {
  const service = await start(queue);
  try {
    const feeds = await Promise.all(jobs.map((j) => collectEvents(fx.bus, tenant, j.id, 120_000)));
    for (const events of feeds)
      assert.equal(events.at(-1)?.payload.status, 'SUCCEEDED', summary(events).join(' '));
  } finally {
    await service.stop({ mode: 'release', timeoutMs: 5000 });
  }
}

async function assertDoneOnce(jobId: string, attempts: number): Promise<void> {
  const row = await fx.db.prisma.job.findUniqueOrThrow({ where: { id: jobId } });
  assert.deepEqual([row.status, row.attempts], ['SUCCEEDED', attempts]);
  assert.equal(await fx.db.prisma.asset.count({ where: { jobId, role: 'OUTPUT' } }), 1);
  assert.equal(await fx.db.prisma.usageRecord.count({ where: { jobId } }), 1);
  assert.equal(await fx.db.prisma.jobEvent.count({ where: { jobId, type: 'RESULT' } }), 1);
}

test('stop (release) mid-batch: every job of the batch back to QUEUED, the gathering one unclaimed; a new worker finishes all once', async () => {
  const batch: Awaited<ReturnType<typeof enqueue>>[] = [];
  for (const seed of [41, 42, 43, 44])
    batch.push(await enqueue(fx.queue, { prompt: `stop ${seed}`, size: 128, steps: 64, seed }));
  // Another image size: another batch key, so it waits for the engine while the batch runs.
  const other = await enqueue(fx.queue, { prompt: 'waiting', size: 64, steps: 8, seed: 45 });
  const before = batchSizes.length;
  const service = await start(fx.queueOptions);
  let stopped: Promise<void> | undefined;
  await new Promise<void>((resolve) => {
    for (const j of batch)
      void collectEvents(fx.bus, tenantId, j.id, 120_000, (e) => {
        if (e.type === 'PROGRESS' && !stopped) {
          stopped = service.stop({ mode: 'release', timeoutMs: 5000 });
          resolve();
        }
      });
  });
  await stopped;
  assert.deepEqual(batchSizes.slice(before), [4], 'the four ran as one batch');
  for (const j of batch) {
    const row = await fx.db.prisma.job.findUniqueOrThrow({ where: { id: j.id } });
    assert.deepEqual([row.status, row.attempts], ['QUEUED', 1]);
    const events = await fx.db.prisma.jobEvent.findMany({ where: { jobId: j.id }, orderBy: { seq: 'asc' } });
    const last = events.at(-1);
    assert.deepEqual(
      [last?.type, (last?.payload as { stage?: string } | undefined)?.stage],
      ['STATUS', 'worker stopping: job released'],
    );
    assert.equal(await fx.db.prisma.asset.count({ where: { jobId: j.id, role: 'OUTPUT' } }), 0);
    assert.equal(await fx.db.prisma.usageRecord.count({ where: { jobId: j.id } }), 0);
  }
  const waiting = await fx.db.prisma.job.findUniqueOrThrow({ where: { id: other.id } });
  assert.deepEqual([waiting.status, waiting.attempts], ['QUEUED', 0], 'never claimed');

  const next = await start(fx.queueOptions);
  try {
    const feeds = await Promise.all(
      [...batch, other].map((j) => collectEvents(fx.bus, tenantId, j.id, 120_000)),
    );
    for (const events of feeds)
      assert.equal(events.at(-1)?.payload.status, 'SUCCEEDED', summary(events).join(' '));
  } finally {
    await next.stop({ mode: 'release', timeoutMs: 5000 });
  }
  for (const j of batch) await assertDoneOnce(j.id, 2);
  await assertDoneOnce(other.id, 1);
});

test('the tenant concurrency limit still counts jobs: of 4 gathered jobs of a 2-slot tenant, 2 run in the batch', async () => {
  const limited = (await fx.db.prisma.tenant.create({ data: { name: 'two-slots', maxConcurrentJobs: 2 } }))
    .id;
  const jobs = [];
  for (const seed of [61, 62, 63, 64])
    jobs.push(
      await enqueueJob(
        { prisma: fx.db.prisma, queue: fx.queue },
        {
          tenantId: limited,
          kind: 'GENERATE',
          modelId,
          input: { prompt: `slots ${seed}`, size: 64, steps: 4, seed },
        },
      ),
    );
  const before = batchSizes.length;
  await runUntilSucceeded(fx.queueOptions, limited, jobs);
  // The first batch held the two jobs that got a slot; the other two waited (new, delayed
  // messages, unclaimed) and ran after them.
  assert.equal(batchSizes[before], 2);
  const rows = await fx.db.prisma.job.findMany({ where: { id: { in: jobs.map((j) => j.id) } } });
  const spans = rows.map((r) => [r.startedAt?.getTime() ?? 0, r.finishedAt?.getTime() ?? 0]);
  const overlapping = (t: number) => spans.filter(([a, b]) => a <= t && t < b).length;
  assert.ok(Math.max(...spans.map(([a]) => overlapping(a))) <= 2, 'never more than 2 RUNNING');
  for (const j of jobs) {
    const row = await fx.db.prisma.job.findUniqueOrThrow({ where: { id: j.id } });
    assert.deepEqual([row.status, row.attempts], ['SUCCEEDED', 1]);
  }
});

test('SQS backend: 4 jobs gathered into one batch, each SUCCEEDED once', async () => {
  const fauxqs = await startFauxqs();
  const policy = { visibilityTimeoutSeconds: 30, maxAttempts: 3, retryDelaySeconds: 1, retryBackoff: false };
  const queue = new SqsQueue<HarmonJobPayload>(await fauxqs.queueOptions('batch-worker', policy));
  try {
    const jobs: Awaited<ReturnType<typeof enqueue>>[] = [];
    for (const seed of [51, 52, 53, 54])
      jobs.push(
        await enqueue(queue, { prompt: `sqs ${seed}`, size: 64, steps: 4, seed, cfg: 1 + seed / 20 }),
      );
    const before = batchSizes.length;
    await runUntilSucceeded(queue, tenantId, jobs);
    assert.deepEqual(batchSizes.slice(before), [4]);
    for (const j of jobs) await assertDoneOnce(j.id, 1);
  } finally {
    await queue.close();
    await fauxqs.close();
  }
});
