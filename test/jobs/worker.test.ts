/**
 * The worker end to end in-process on the REAL tiny model: real Postgres, s3rver, pg-boss queue.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { createEngineRunner, type EngineRunner } from '../../src/jobs/engine-runner.ts';
import { enqueueJob } from '../../src/jobs/enqueue.ts';
import { requestCancel } from '../../src/jobs/job-lifecycle.ts';
import { startWorkerService, type WorkerService } from '../../src/jobs/service.ts';
import { verifyWebhookSignature } from '../../src/jobs/webhooks.ts';
import { collectEvents, summary, type WorkerFixture, workerFixture } from './worker-fixture.ts';

let fx: WorkerFixture;
let runner: EngineRunner;
let service: WorkerService;
let tenantId: string;
let modelId: string;
const SECRET = 'whsec_test_secret';

before(async () => {
  fx = await workerFixture();
  runner = await createEngineRunner([fx.modelDir], { previewEvery: 2 });
  modelId = runner.models()[0];
  tenantId = (
    await fx.db.prisma.tenant.create({ data: { name: 'acme', webhookSecret: SECRET, maxConcurrentJobs: 4 } })
  ).id;
  service = await startWorkerService({
    prisma: fx.db.prisma,
    databaseUrl: fx.db.url,
    blobStore: fx.s3.blobStore,
    runner,
    queue: fx.queueOptions,
    fetchPolicy: { allowLoopback: true, allowHttp: true },
    webhooks: { intervalMs: 200, baseDelayMs: 200 },
  });
});
after(async () => {
  await service?.stop({ mode: 'release', timeoutMs: 2000 });
  await runner?.close();
  await fx?.close();
});

const enqueue = (
  kind: 'GENERATE' | 'DESCRIBE',
  input: Record<string, unknown>,
  extra: { webhookUrl?: string } = {},
) =>
  enqueueJob(
    // Test-only: the webhook receiver below listens on loopback over plain http.
    { prisma: fx.db.prisma, queue: fx.queue, urlPolicy: { allowLoopback: true, allowHttp: true } },
    { tenantId, kind, modelId, input, ...extra },
  );

test('generate on the tiny model: QUEUED, RUNNING, PROGRESS x steps (+previews), RESULT, SUCCEEDED; PNG in S3 decodes', async () => {
  const job = await enqueue('GENERATE', { prompt: 'a red fox', size: 64, steps: 4, seed: 7 });
  const events = await collectEvents(fx.bus, tenantId, job.id);
  const progress = events.filter((e) => e.type === 'PROGRESS');
  assert.deepEqual(
    progress.map((e) => [e.payload.step, e.payload.totalSteps]),
    [
      [1, 4],
      [2, 4],
      [3, 4],
      [4, 4],
    ],
  );
  assert.deepEqual(
    summary(events).filter((s) => !s.startsWith('PROGRESS') && !s.startsWith('PREVIEW')),
    ['STATUS:QUEUED', 'STATUS:RUNNING', 'RESULT:SUCCEEDED', 'STATUS:SUCCEEDED'],
  );
  assert.deepEqual(
    events.map((e) => e.seq),
    events.map((_, i) => i + 1),
  );
  const previews = events.filter((e) => e.type === 'PREVIEW');
  assert.ok(previews.length >= 1, 'a preview every 2 steps');

  const done = await fx.db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
  assert.equal(done.status, 'SUCCEEDED');
  assert.equal(done.attempts, 1);
  assert.equal(done.progress, 1);
  const outputs = await fx.db.prisma.asset.findMany({ where: { jobId: job.id, role: 'OUTPUT' } });
  assert.equal(outputs.length, 1);
  const result = events.find((e) => e.type === 'RESULT');
  assert.deepEqual(result?.payload.assetIds, [outputs[0].id]);
  const png = await fx.s3.blobStore.get(outputs[0].key);
  assert.ok(outputs[0].key.startsWith(`tenants/${tenantId}/outputs/`));
  assert.equal(createHash('sha256').update(png).digest('hex'), outputs[0].sha256);
  const meta = await sharp(png).metadata();
  assert.deepEqual(
    [meta.format, meta.width, meta.height, outputs[0].width, outputs[0].height],
    ['png', 64, 64, 64, 64],
  );
  const previewAsset = await fx.db.prisma.asset.findFirstOrThrow({
    where: { id: previews[0].payload.previewAssetId },
  });
  assert.equal(previewAsset.role, 'PREVIEW');
  assert.ok(previewAsset.key.startsWith(`tenants/${tenantId}/previews/`));
  const usage = await fx.db.prisma.usageRecord.findMany({ where: { jobId: job.id } });
  assert.equal(usage.length, 1);
  assert.equal(usage[0].images, 1);

  // A re-delivered message for the finished job changes nothing.
  await fx.queue.send({ jobId: job.id, tenantId }, { key: job.id });
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(await fx.db.prisma.asset.count({ where: { jobId: job.id, role: 'OUTPUT' } }), 1);
  assert.equal(await fx.db.prisma.usageRecord.count({ where: { jobId: job.id } }), 1);
  assert.equal(await fx.db.prisma.jobEvent.count({ where: { jobId: job.id } }), events.length);
});

test('describe from inline base64: TEXT_DELTA events and the text result', async () => {
  const image = await sharp({
    create: { width: 64, height: 64, channels: 3, background: { r: 200, g: 30, b: 30 } },
  })
    .png()
    .toBuffer();
  const job = await enqueue('DESCRIBE', {
    maxTokens: 5,
    size: 64,
    image: { base64: image.toString('base64') },
  });
  const events = await collectEvents(fx.bus, tenantId, job.id);
  assert.equal(events.at(-1)?.payload.status, 'SUCCEEDED');
  const deltas = events
    .filter((e) => e.type === 'TEXT_DELTA')
    .map((e) => e.payload.textDelta)
    .join('');
  const done = await fx.db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
  assert.ok(done.text && done.text.length > 0);
  assert.equal(deltas, done.text);
  assert.equal(events.find((e) => e.type === 'RESULT')?.payload.text, done.text);
  const usage = await fx.db.prisma.usageRecord.findUniqueOrThrow({ where: { jobId: job.id } });
  assert.ok(usage.tokens >= 1 && usage.tokens <= 5);
});

test('bad input fails at once without retries: malformed base64, unknown upload, non-image bytes', async () => {
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ image: { base64: 'not base64!!' } }, 'BAD_USER_INPUT', /base64/],
    [{ image: { uploadId: '00000000-0000-4000-8000-000000000000' } }, 'NOT_FOUND', /upload/],
    [{ image: { base64: Buffer.from('hello, not an image').toString('base64') } }, 'IMAGE_INVALID', /./],
  ];
  for (const [input, code, message] of cases) {
    const job = await enqueue('DESCRIBE', { maxTokens: 2, ...input });
    const events = await collectEvents(fx.bus, tenantId, job.id);
    assert.deepEqual(
      summary(events),
      ['STATUS:QUEUED', 'STATUS:RUNNING', 'ERROR:FAILED', 'STATUS:FAILED'],
      JSON.stringify(input),
    );
    const done = await fx.db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
    assert.equal(done.errorCode, code);
    assert.match(done.errorMessage ?? '', message);
    assert.equal(done.attempts, 1);
    assert.equal(events[2].payload.error?.code, code);
  }
});

test('cancellation mid-run stops between steps: CANCELED, no output, no usage', async () => {
  const job = await enqueue('GENERATE', { prompt: 'cancel me', size: 128, steps: 64, seed: 1 });
  let canceled = false;
  const events = await collectEvents(fx.bus, tenantId, job.id, 60_000, (e) => {
    if (e.type === 'PROGRESS' && !canceled) {
      canceled = true;
      void requestCancel(fx.db.prisma, tenantId, job.id);
    }
  });
  assert.equal(events.at(-1)?.type, 'STATUS');
  assert.equal(events.at(-1)?.payload.status, 'CANCELED');
  const steps = events.filter((e) => e.type === 'PROGRESS').length;
  assert.ok(steps >= 1 && steps < 64, `stopped after ${steps} of 64 steps`);
  assert.equal(await fx.db.prisma.asset.count({ where: { jobId: job.id, role: 'OUTPUT' } }), 0);
  assert.equal(await fx.db.prisma.usageRecord.count({ where: { jobId: job.id } }), 0);
  assert.equal((await fx.db.prisma.job.findUniqueOrThrow({ where: { id: job.id } })).status, 'CANCELED');
});

test('webhook: signed HMAC over timestamp.body, retried after a 500, delivered once', async () => {
  const received: { body: string; signature: string }[] = [];
  let calls = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      calls++;
      received.push({ body, signature: String(req.headers['harmon-signature'] ?? '') });
      res.statusCode = calls === 1 ? 500 : 200;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    const job = await enqueue(
      'GENERATE',
      { prompt: 'hook', size: 64, steps: 2, seed: 3 },
      { webhookUrl: url },
    );
    await collectEvents(fx.bus, tenantId, job.id);
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && received.length < 2) await new Promise((r) => setTimeout(r, 100));
    assert.equal(received.length, 2, 'one failed attempt (500) and one retry');
    for (const r of received) assert.equal(verifyWebhookSignature(SECRET, r.signature, r.body), true);
    assert.equal(verifyWebhookSignature('wrong-secret', received[1].signature, received[1].body), false);
    assert.equal(
      verifyWebhookSignature(SECRET, received[1].signature, received[1].body.replace('succeeded', 'failed')),
      false,
    );
    const body = JSON.parse(received[1].body);
    assert.equal(body.type, 'job.succeeded');
    assert.equal(body.job.id, job.id);
    assert.equal(body.event.status, 'SUCCEEDED');
    const delivery = await fx.db.prisma.webhookDelivery.findFirstOrThrow({ where: { jobId: job.id } });
    assert.ok(delivery.deliveredAt);
    assert.equal(delivery.attempts, 2);
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(received.length, 2, 'no delivery after success');
  } finally {
    server.close();
  }
});
