/**
 * Orphaned outputs: a worker that dies (or fails) after uploading outputs but before the final
 * transaction must not leave S3 objects behind; and a connection dropped under that transaction
 * does not leave the job RUNNING. Real Postgres + s3rver, a fake runner (fault injection happens
 * at the blob store the handler writes through, and at the worker's Prisma), processDelivery
 * driven directly.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { EncodedImage, GenerateResult } from '../../src/harmon/events.ts';
import { enqueueJob } from '../../src/jobs/enqueue.ts';
import { JobLocks } from '../../src/jobs/job-locks.ts';
import type { HarmonJobPayload, JobQueue } from '../../src/jobs/queue/port.ts';
import type { JobRunner } from '../../src/jobs/runner.ts';
import { processDelivery, type WorkerDeps } from '../../src/jobs/worker.ts';
import { logger } from '../../src/shared/logger.ts';
import type { BlobStore } from '../../src/storage/blob-store.ts';
import { type FreshDatabase, freshDatabase } from '../helpers/pg.ts';
import { startS3, type TestS3 } from '../helpers/s3.ts';

let db: FreshDatabase;
let s3: TestS3;
let tenantId: string;
const log = logger.child({ test: 'worker-hardening' });
log.level = 'silent';

// The producer only needs send(); nothing consumes in these tests.
const queue = { send: async () => 'msg' } as unknown as JobQueue<HarmonJobPayload>;

const png = (n: number): EncodedImage => ({
  data: new Uint8Array([0x89, 0x50, 0x4e, 0x47, n]),
  width: 16,
  height: 16,
  contentType: 'image/png',
});

/** Emits one preview, then returns `count` images, like the real pipeline's result shape. */
const runner: JobRunner = {
  models: () => ['fake'],
  async generate(_m, input, o): Promise<GenerateResult> {
    o.onEvent({ type: 'step', step: 1, totalSteps: 1, predicted: 1, at: Date.now() });
    o.onEvent({ type: 'preview', step: 1, totalSteps: 1, images: [png(0)] });
    const count = input.count ?? 1;
    return {
      images: Array.from({ length: count }, (_, i) => png(i + 1)),
      seed: 1,
      steps: 1,
      size: 64,
      meta: {
        modelId: 'fake',
        variant: 'fake',
        demo: true,
        stageMs: { prefill: 1, vae_decode: 2 },
        totalMs: 3,
        sessions: { runs: 0, runsByGraph: {}, msByGraph: {} },
        sessionMs: 0,
      },
    };
  },
  describe: async () => assert.fail('not used'),
};

before(async () => {
  db = await freshDatabase();
  s3 = await startS3('hardening');
  tenantId = (await db.prisma.tenant.create({ data: { name: 'orphans', maxConcurrentJobs: 5 } })).id;
});
after(async () => {
  await s3?.stop();
  await db?.drop();
});

const deps = (blobStore: BlobStore, extra: Partial<WorkerDeps> = {}): WorkerDeps => ({
  prisma: db.prisma,
  databaseUrl: db.url,
  queue,
  blobStore,
  runner,
  log,
  ...extra,
});
async function listKeys(prefix: string): Promise<string[]> {
  const r = await s3.blobStore.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
  return (r.Contents ?? []).map((o) => o.Key as string).sort();
}
const qctx = () => ({
  signal: new AbortController().signal,
  heartbeat: async () => true,
  setLease: async () => true,
});
/** A delivery of the job's live message (the one its queue token names). */
const delivery = (job: { id: string; queueToken: string | null }, attempt: number) => ({
  messageId: `m${attempt}`,
  key: job.queueToken ?? job.id,
  payload: { jobId: job.id, tenantId },
  attempt,
});
const newJob = (count: number) =>
  enqueueJob(
    { prisma: db.prisma, queue },
    { tenantId, kind: 'GENERATE', modelId: 'fake', input: { prompt: 'p', size: 64, steps: 1, count } },
  );

test('worker dies after uploading outputs, before the final transaction: the next attempt deletes them', async () => {
  const job = await newJob(1);
  // Attempt 1: the output put reaches S3, then the worker "hangs" there forever, as if killed.
  const stored: string[] = [];
  let crash!: (e: Error) => void;
  const dying: BlobStore = {
    ...s3.blobStore,
    async put(key, body, opts) {
      await s3.blobStore.put(key, body, opts);
      if (!key.includes('/outputs/')) return;
      stored.push(key);
      await new Promise<void>((_, reject) => {
        crash = reject;
      });
    },
  };
  const locks1 = new JobLocks(db.url, log);
  const first = processDelivery(deps(dying), locks1, delivery(job, 1), qctx()).catch((e: unknown) => e);
  const until = Date.now() + 20_000;
  while (stored.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  assert.equal(stored.length, 1, 'attempt 1 uploaded its output');
  const orphan = stored[0];
  assert.ok(await s3.blobStore.head(orphan));
  // The process dies: its lock connection goes, the job stays RUNNING with the key pending.
  await locks1.close();
  const mid = await db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
  assert.equal(mid.status, 'RUNNING');
  // (attempt 1's preview may or may not have been recorded yet; either way is handled)
  assert.ok(mid.pendingKeys.includes(orphan), JSON.stringify(mid.pendingKeys));

  // Attempt 2 (the redelivery) on a healthy worker.
  const locks2 = new JobLocks(db.url, log);
  await processDelivery(deps(s3.blobStore), locks2, delivery(job, 2), qctx());
  await locks2.close();

  const done = await db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
  assert.equal(done.status, 'SUCCEEDED');
  assert.deepEqual(done.pendingKeys, []);
  assert.deepEqual(done.stageMs, { prefill: 1, vae_decode: 2 });
  assert.equal(await s3.blobStore.head(orphan), null, "attempt 1's object is gone");
  const outputs = await db.prisma.asset.findMany({ where: { jobId: job.id, role: 'OUTPUT' } });
  assert.equal(outputs.length, 1);
  assert.notEqual(outputs[0].key, orphan);
  assert.ok(await s3.blobStore.head(outputs[0].key), 'the recorded output exists');
  // Every object under the tenant's prefix is one an Asset row records: no orphans at all.
  const rows = await db.prisma.asset.findMany({ where: { jobId: job.id }, select: { key: true } });
  assert.deepEqual(await listKeys(`tenants/${tenantId}/`), rows.map((r) => r.key).sort());
  assert.equal(await db.prisma.usageRecord.count({ where: { jobId: job.id } }), 1);

  // Let the "dead" attempt 1 unwind: its late failure must not touch the finished job.
  crash(new Error('killed'));
  await first;
  await locks1.close();
  const still = await db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
  assert.equal(still.status, 'SUCCEEDED');
  assert.equal(await db.prisma.asset.count({ where: { jobId: job.id, role: 'OUTPUT' } }), 1);
});

test('an attempt that fails for good after uploading part of its outputs deletes what it uploaded', async () => {
  const job = await newJob(2);
  const uploaded: string[] = [];
  const failing: BlobStore = {
    ...s3.blobStore,
    async put(key, body, opts) {
      if (key.includes('/outputs/') && uploaded.length === 1) throw new Error('S3 went away');
      await s3.blobStore.put(key, body, opts);
      if (key.includes('/outputs/')) uploaded.push(key);
    },
  };
  const locks = new JobLocks(db.url, log);
  // Last attempt (maxAttempts 1): the transient error ends the job FAILED.
  await processDelivery(deps(failing, { maxAttempts: 1 }), locks, delivery(job, 1), qctx());
  await locks.close();
  const ended = await db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
  assert.equal(ended.status, 'FAILED');
  assert.equal(uploaded.length, 1);
  assert.equal(await s3.blobStore.head(uploaded[0]), null, 'the partial output was deleted');
  assert.deepEqual(ended.pendingKeys, []);
  assert.equal(await db.prisma.asset.count({ where: { jobId: job.id, role: 'OUTPUT' } }), 0);
  const previews = await db.prisma.asset.findMany({ where: { jobId: job.id }, select: { key: true } });
  const left = (await listKeys(`tenants/${tenantId}/`)).filter((k) => k.includes(job.id));
  assert.deepEqual(left, previews.map((r) => r.key).sort(), 'only recorded previews remain');
});

/**
 * The worker's Prisma with the next `$transaction` after `arm()` failing as a dropped connection
 * does (what a worker resumed after a freeze meets: its pooled sessions were ended). `committed`:
 * the transaction runs and commits first, and only its reply is lost.
 */
function droppingPrisma(committed: boolean) {
  let armed = false;
  let tries = 0;
  const dropped = () => new Error('Connection terminated unexpectedly');
  const prisma = new Proxy(db.prisma, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop !== '$transaction') return typeof value === 'function' ? value.bind(target) : value;
      return async (...args: Parameters<typeof target.$transaction>) => {
        tries++;
        if (!armed) return (target.$transaction as (...a: unknown[]) => unknown)(...args);
        armed = false;
        if (committed) await (target.$transaction as (...a: unknown[]) => unknown)(...args);
        throw dropped();
      };
    },
  });
  const arm = () => {
    armed = true;
    tries = 0;
  };
  return { prisma, arm, tries: () => tries };
}

test("a dropped connection under the attempt's ending: written on the next try, and never twice", async () => {
  for (const committed of [false, true]) {
    const job = await newJob(1);
    const db2 = droppingPrisma(committed);
    // The ending (succeedRun) is then the first transaction after the output's upload.
    const arming: BlobStore = {
      ...s3.blobStore,
      async put(key, body, opts) {
        await s3.blobStore.put(key, body, opts);
        if (key.includes('/outputs/')) db2.arm();
      },
    };
    // No step or preview events: no progress write is left for the sink's last flush.
    const quiet: JobRunner = {
      ...runner,
      generate: (m, input, o) => runner.generate(m, input, { ...o, onEvent: () => {} }),
    };
    const locks = new JobLocks(db.url, log);
    await processDelivery(
      deps(arming, { prisma: db2.prisma, runner: quiet }),
      locks,
      delivery(job, 1),
      qctx(),
    );
    await locks.close();
    const label = committed ? 'the first write committed, its reply lost' : 'the first write failed';
    assert.equal(db2.tries(), 2, label);
    const done = await db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
    assert.equal(done.status, 'SUCCEEDED', label);
    assert.equal(done.attempts, 1, label);
    assert.deepEqual(done.pendingKeys, [], label);
    const outputs = await db.prisma.asset.findMany({ where: { jobId: job.id, role: 'OUTPUT' } });
    assert.equal(outputs.length, 1, label);
    assert.ok(await s3.blobStore.head(outputs[0].key), `${label}: the recorded output is kept`);
    assert.equal(await db.prisma.usageRecord.count({ where: { jobId: job.id } }), 1, label);
    assert.equal(await db.prisma.jobEvent.count({ where: { jobId: job.id, type: 'RESULT' } }), 1, label);
  }
});
