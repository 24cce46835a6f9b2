/**
 * The deployment shape on loopback (issue 6): two `harmon serve --no-worker` API processes and two
 * `harmon worker` processes, all real child processes on ONE Postgres (fresh schema, pg-boss
 * queue, LISTEN/NOTIFY fan-out) and one s3rver, with the REAL tiny model. A client subscribed on
 * API #1 follows a job enqueued through API #2; the worker running it is SIGKILLed mid-job and the
 * other worker finishes it exactly once.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { buildTinyModel } from '../../src/onnx/tiny.ts';
import { createApiKey } from '../../src/tenancy/api-keys.ts';
import { dropSchema, type FreshDatabase, freshDatabase } from '../helpers/pg.ts';
import { startS3, type TestS3 } from '../helpers/s3.ts';
import { exited, type Harmon, killAll, pidRunningJob, startHarmon } from './processes.ts';

let db: FreshDatabase;
let s3: TestS3;
let root: string;
let env: NodeJS.ProcessEnv;
const procs: Harmon[] = [];
let api1: string;
let api2: string;
let workers: Harmon[] = [];

const LISTENING = /harmon listening on (http:\/\/\S+)/;
const WORKER_READY = /harmon worker ready \(pid (\d+)/;
// The default lease: a killed worker's job is handed on by the other worker's reconciler as soon
// as the killed one's lock session is gone, not when its lease runs out.
const WORKER_ARGS = ['worker', '--preview-every', '8'];

async function serve(): Promise<string> {
  const p = await startHarmon(['serve', '--no-worker', '--port', '0'], env, LISTENING, 60_000);
  procs.push(p);
  return p.match[1];
}

async function worker(): Promise<Harmon> {
  const p = await startHarmon(WORKER_ARGS, env, WORKER_READY, 60_000);
  procs.push(p);
  return p;
}

before(async () => {
  db = await freshDatabase();
  s3 = await startS3('deploy-test');
  root = await mkdtemp(join(tmpdir(), 'harmon-deploy-'));
  await buildTinyModel({ outDir: join(root, 'tiny'), seed: 3 });
  env = {
    ...process.env,
    DATABASE_URL: db.url,
    S3_ENDPOINT: s3.endpoint,
    S3_BUCKET: 'deploy-test',
    S3_ACCESS_KEY_ID: 'S3RVER',
    S3_SECRET_ACCESS_KEY: 'S3RVER',
    HARMON_MODEL: join(root, 'tiny'),
    HARMON_HOME: root,
    LOG_LEVEL: 'warn',
  };
  // API #1 alone first: it creates the pg-boss schema and queue, which the others then share.
  api1 = await serve();
  // Workers last: each applies its queue policy after the APIs applied theirs.
  api2 = await serve();
  workers = await Promise.all([worker(), worker()]);
});

after(async () => {
  await killAll(procs);
  await dropSchema(`${db.schema}_boss`);
  await db?.drop();
  await s3?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

type Ev = { seq: number; type: string; status: string; step: number | null; previewUrl: string | null };

test('subscriber on API #1 sees every event of a job enqueued on API #2; SIGKILL of its worker -> the other finishes it once', {
  timeout: 300_000,
}, async () => {
  const { key, tenantId } = await createApiKey(db.prisma, 'deploy-tenant');
  const modelId = (
    JSON.parse(await readFile(join(root, 'tiny', 'manifest.json'), 'utf8')) as { modelId: string }
  ).modelId;

  // Enqueue through API #2.
  const res = await fetch(`${api2}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({
      query:
        'mutation { generate(input: { prompt: "two of each", size: 128, steps: 48, seed: 11 }) { id status model } }',
    }),
  });
  const body = (await res.json()) as { data?: { generate: { id: string; status: string; model: string } } };
  const job = body.data?.generate;
  assert.ok(job, JSON.stringify(body));
  assert.deepEqual([job.status, job.model], ['QUEUED', modelId]);

  // Follow it on API #1 over graphql-ws (replay from 0, then live).
  const client = createClient({
    url: `${api1.replace('http', 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${key}` },
    retryAttempts: 0,
  });
  const seen: Ev[] = [];
  const runners: number[] = [];
  let killed: Harmon | undefined;
  let killing: Promise<void> | undefined;
  const pids = workers.map((w) => w.pid);
  const it = client.iterate<{ jobEvents: Ev }>({
    query:
      'subscription($id: ID!) { jobEvents(jobId: $id, afterSeq: 0) { seq type status step previewUrl } }',
    variables: { id: job.id },
  });
  // Every wait is bounded, generously for a loaded machine: the stream is cut after 240 s.
  const timer = setTimeout(() => void it.return?.(), 240_000);
  try {
    for await (const r of it) {
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      const e = r.data?.jobEvents as Ev;
      seen.push(e);
      if (e.type !== 'PROGRESS') continue;
      const running = seen.filter((x) => x.type === 'STATUS' && x.status === 'RUNNING').length;
      if (runners.length < running) {
        // First PROGRESS of a run: whoever holds the job's lock is running it right now.
        runners.push((await pidRunningJob(db.url, job.id, pids)) ?? -1);
        if (running === 1) {
          killed = workers.find((w) => w.pid === runners[0]);
          assert.ok(killed, `no worker holds the job lock (pids ${pids})`);
          killed.child.kill('SIGKILL');
          killing = exited(killed.child).then(({ signal }) => assert.equal(signal, 'SIGKILL'));
        }
      }
    }
  } finally {
    clearTimeout(timer);
    await client.dispose();
  }
  await killing;
  const trace = seen.map((e) => `${e.seq}:${e.type}:${e.status}`).join(' ');

  // The subscriber saw SUCCEEDED, and exactly the stored event log: seq 1..N, no gap, no duplicate.
  assert.equal(seen.at(-1)?.status, 'SUCCEEDED', trace);
  const stored = await db.prisma.jobEvent.findMany({ where: { jobId: job.id }, orderBy: { seq: 'asc' } });
  assert.deepEqual(
    seen.map((e) => [e.seq, e.type]),
    stored.map((e) => [e.seq, e.type]),
  );
  assert.deepEqual(
    seen.map((e) => e.seq),
    seen.map((_, i) => i + 1),
  );
  assert.equal(seen.filter((e) => e.type === 'STATUS' && e.status === 'RUNNING').length, 2, trace);
  assert.ok(
    seen.some((e) => e.type === 'PREVIEW' && e.previewUrl),
    'previews were streamed',
  );

  // Run 1 by the killed worker, run 2 by the other one, which is still alive.
  const survivor = workers.find((w) => w !== killed) as Harmon;
  assert.deepEqual(runners, [killed?.pid, survivor.pid]);
  assert.equal(survivor.child.exitCode, null);

  // Finished exactly once.
  const row = await db.prisma.job.findUniqueOrThrow({ where: { id: job.id } });
  assert.deepEqual([row.status, row.attempts, row.tenantId], ['SUCCEEDED', 2, tenantId]);
  assert.equal(await db.prisma.asset.count({ where: { jobId: job.id, role: 'OUTPUT' } }), 1);
  assert.equal(await db.prisma.usageRecord.count({ where: { jobId: job.id } }), 1);

  // Both APIs read the same result.
  for (const api of [api1, api2]) {
    const q: Response = await fetch(`${api}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: `{ job(id: "${job.id}") { status images { width } } }` }),
    });
    assert.deepEqual(((await q.json()) as { data: unknown }).data, {
      job: { status: 'SUCCEEDED', images: [{ width: 128 }] },
    });
  }
});
