/**
 * `harmon worker` as a real process on a real Postgres and s3rver with the tiny model: a
 * requested execution provider that this machine lacks (CUDA; see test/runtime/providers.test.ts)
 * stops the worker with a coded message instead of serving on CPU; `cpu` alone serves, and the
 * worker logs what its model load cost per graph.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildTinyModel } from '../../src/onnx/tiny.ts';
import { exited, startHarmon } from '../deploy/processes.ts';
import { dropSchema, type FreshDatabase, freshDatabase } from '../helpers/pg.ts';
import { startS3, type TestS3 } from '../helpers/s3.ts';

let db: FreshDatabase;
let s3: TestS3;
let root: string;
let env: NodeJS.ProcessEnv;

before(async () => {
  db = await freshDatabase();
  s3 = await startS3('providers-test');
  root = await mkdtemp(join(tmpdir(), 'harmon-providers-'));
  await buildTinyModel({ outDir: join(root, 'tiny'), seed: 1 });
  env = {
    PATH: process.env.PATH ?? '',
    HOME: root,
    DATABASE_URL: db.url,
    S3_ENDPOINT: s3.endpoint,
    S3_BUCKET: 'providers-test',
    S3_ACCESS_KEY_ID: 'S3RVER',
    S3_SECRET_ACCESS_KEY: 'S3RVER',
    HARMON_MODEL: join(root, 'tiny'),
    HARMON_HOME: root,
    LOG_LEVEL: 'info',
  };
});

after(async () => {
  await dropSchema(`${db.schema}_boss`);
  await db?.drop();
  await s3?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

test('EXECUTION_PROVIDERS=cuda,cpu without CUDA: the worker exits 3 naming the provider', async () => {
  const err = await startHarmon(
    ['worker'],
    { ...env, EXECUTION_PROVIDERS: 'cuda,cpu' },
    /ready/,
    120_000,
  ).then(
    (p) => {
      p.child.kill('SIGKILL');
      throw new Error(`the worker started without CUDA: ${p.output()}`);
    },
    (e: Error) => e,
  );
  assert.match(err.message, /exited \(3\)/);
  assert.match(
    err.message,
    /harmon: EXECUTION_PROVIDER_UNAVAILABLE: execution provider cuda .* available: cpu/,
  );
});

test('EXECUTION_PROVIDERS=cpu: the worker serves and logs its load time per graph', async () => {
  const p = await startHarmon(
    ['worker'],
    { ...env, EXECUTION_PROVIDERS: 'cpu' },
    /harmon worker ready/,
    120_000,
  );
  try {
    const line = p
      .output()
      .split('\n')
      .find((l) => l.includes('"msg":"model loaded"'));
    assert.ok(line, p.output());
    const rec = JSON.parse(line) as { executionProvider: string; msByGraph: Record<string, number> };
    assert.equal(rec.executionProvider, 'cpu');
    assert.ok(rec.msByGraph.lm >= 0 && rec.msByGraph.vae_decoder >= 0, line);
  } finally {
    // Sent the moment the ready line arrives: the handlers must already be in place.
    p.child.kill('SIGTERM');
    const ex = await exited(p.child);
    assert.equal(ex.code, 0, `${JSON.stringify(ex)} ${p.output().slice(-1500)}`);
  }
});
