// The whole flow on the REAL tiny model: API + in-process worker (engine in a worker thread),
// real Postgres, real s3rver, real HTTP and graphql-ws. generate -> live events -> PNG via the
// presigned URL; describe with an image uploaded through createUpload -> token deltas + text.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { buildTinyModel } from '../../src/onnx/tiny.ts';
import { type ApiHarness, collect, startApi } from './harness.ts';

let h: ApiHarness;
let key: string;
let pngBytes: Buffer;
const dir = mkdtempSync(join(tmpdir(), 'harmon-api-flow-'));

before(async () => {
  const modelDir = join(dir, 'model');
  await buildTinyModel({ outDir: modelDir, seed: 1 });
  h = await startApi({ workerModelDirs: [modelDir] });
  ({ key } = await h.newTenant('flow'));
});
after(async () => {
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

const EVENTS = `subscription($id: ID!, $after: Int) { jobEvents(jobId: $id, afterSeq: $after) {
  seq type status step totalSteps textDelta text previewUrl error { code message } } }`;
type Ev = {
  seq: number;
  type: string;
  status: string;
  step: number | null;
  totalSteps: number | null;
  textDelta: string | null;
  text: string | null;
};

test('generate: QUEUED, RUNNING, PROGRESS for every step, SUCCEEDED; the PNG decodes', async () => {
  const steps = 4;
  const g = await h.gql<{ generate: { id: string } }>(
    key,
    'mutation($s:Int!){ generate(input:{ prompt: "a red square", size: 64, steps: $s, seed: 7 }) { id } }',
    { s: steps },
  );
  const id = g.body.data?.generate.id as string;
  assert.ok(id, JSON.stringify(g.body));
  const { data, errors } = await collect<{ jobEvents: Ev }>(h.ws(key), EVENTS, { id });
  assert.deepEqual(errors, []);
  const ev = data.map((d) => d.jobEvents);
  assert.deepEqual(
    ev.map((e) => e.seq),
    ev.map((_, i) => i + 1),
    'gap-free seq from 1',
  );
  assert.equal(ev[0].status, 'QUEUED');
  assert.ok(ev.some((e) => e.type === 'STATUS' && e.status === 'RUNNING'));
  const progress = ev.filter((e) => e.type === 'PROGRESS' && e.totalSteps === steps).map((e) => e.step);
  assert.deepEqual(progress, [1, 2, 3, 4]);
  assert.ok(ev.some((e) => e.type === 'RESULT'));
  assert.deepEqual([ev.at(-1)?.type, ev.at(-1)?.status], ['STATUS', 'SUCCEEDED']);

  const j = await h.gql<{
    job: {
      status: string;
      progress: number;
      images: { url: string; width: number; height: number; contentType: string }[];
    };
  }>(key, 'query($id:ID!){ job(id:$id) { status progress images { url width height contentType } } }', {
    id,
  });
  const job = j.body.data?.job;
  assert.equal(job?.status, 'SUCCEEDED');
  assert.equal(job?.images.length, 1);
  const res = await fetch(job?.images[0].url as string);
  assert.equal(res.status, 200);
  pngBytes = Buffer.from(await res.arrayBuffer());
  const meta = await sharp(pngBytes).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 64, 64]);
  const { data: raw } = await sharp(pngBytes).raw().toBuffer({ resolveWithObject: true });
  assert.equal(raw.length, 64 * 64 * (meta.channels ?? 3));
});

test('describe: image uploaded through createUpload -> TEXT_DELTA events and the text result', async () => {
  assert.ok(pngBytes, 'needs the generated PNG');
  const u = await h.gql<{ createUpload: { id: string; uploadUrl: string } }>(
    key,
    'mutation($b:Int!){ createUpload(contentType:"image/png", bytes:$b) { id uploadUrl } }',
    { b: pngBytes.length },
  );
  const up = u.body.data?.createUpload;
  assert.ok(up, JSON.stringify(u.body));
  const put = await fetch(up.uploadUrl, {
    method: 'PUT',
    headers: { 'content-type': 'image/png' },
    body: new Uint8Array(pngBytes),
  });
  assert.equal(put.status, 200);
  const d = await h.gql<{ describe: { id: string } }>(
    key,
    'mutation($u:ID!){ describe(input:{ uploadId:$u, maxTokens: 6 }) { id } }',
    { u: up.id },
  );
  const id = d.body.data?.describe.id as string;
  assert.ok(id, JSON.stringify(d.body));
  const { data, errors } = await collect<{ jobEvents: Ev }>(h.ws(key), EVENTS, { id });
  assert.deepEqual(errors, []);
  const ev = data.map((x) => x.jobEvents);
  assert.deepEqual([ev.at(-1)?.type, ev.at(-1)?.status], ['STATUS', 'SUCCEEDED'], JSON.stringify(ev.at(-1)));
  const deltas = ev.filter((e) => e.type === 'TEXT_DELTA').map((e) => e.textDelta ?? '');
  assert.ok(deltas.length >= 1 && deltas.length <= 6);
  const j = await h.gql<{ job: { text: string; status: string } }>(
    key,
    'query($id:ID!){ job(id:$id) { status text } }',
    { id },
  );
  assert.equal(j.body.data?.job.status, 'SUCCEEDED');
  assert.equal(j.body.data?.job.text, deltas.join(''));
});

test('concurrency limit: a tenant without a free slot keeps its job QUEUED (not rejected) until one frees', async () => {
  const t = await h.newTenant('flow-slots');
  await h.db.prisma.tenant.update({ where: { id: t.tenantId }, data: { maxConcurrentJobs: 0 } });
  const g = await h.gql<{ generate: { id: string; status: string } }>(
    t.key,
    'mutation { generate(input:{ prompt: "wait", size: 64, steps: 2 }) { id status } }',
  );
  const id = g.body.data?.generate.id as string;
  assert.equal(g.body.data?.generate.status, 'QUEUED');
  await new Promise((r) => setTimeout(r, 2500));
  const waiting = await h.db.prisma.job.findUniqueOrThrow({ where: { id } });
  assert.deepEqual([waiting.status, waiting.attempts, waiting.errorCode], ['QUEUED', 0, null]);
  await h.db.prisma.tenant.update({ where: { id: t.tenantId }, data: { maxConcurrentJobs: 1 } });
  const { data } = await collect<{ jobEvents: Ev }>(h.ws(t.key), EVENTS, { id });
  assert.equal(data.at(-1)?.jobEvents.status, 'SUCCEEDED');
});
