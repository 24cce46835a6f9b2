/**
 * The GPU worker process (`harmon worker`) must not load the API stack: started for real against
 * Postgres, s3rver and the tiny model, with a loader hook recording every module it resolves, it
 * loads the queue and the engine but nothing under node_modules/@apollo/server.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type WorkerFixture, workerFixture } from '../jobs/worker-fixture.ts';
import { exited, startHarmon } from './processes.ts';

const RECORDER = './test/helpers/record-modules.mjs';
let fx: WorkerFixture;
let dir: string;

before(async () => {
  fx = await workerFixture();
  dir = await mkdtemp(join(tmpdir(), 'harmon-modules-'));
});
after(async () => {
  await fx?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const apollo = (mods: string[]) => mods.filter((m) => m.includes('/node_modules/@apollo/server/'));

test('the recorder sees @apollo/server when a process does load it (control)', async () => {
  const out = join(dir, 'control.txt');
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--import', RECORDER, '--input-type=module', '-e', "await import('@apollo/server')"],
    { env: { ...process.env, HARMON_RECORD_MODULES: out }, stdio: 'ignore' },
  );
  assert.equal((await exited(child)).code, 0);
  assert.ok(apollo((await readFile(out, 'utf8')).split('\n')).length > 0);
});

test('harmon worker runs without loading @apollo/server', async () => {
  const out = join(dir, 'worker.txt');
  const env = { ...fx.env, HARMON_RECORD_MODULES: out };
  const w = await startHarmon(['worker'], env, /harmon worker ready/, 90_000, ['--import', RECORDER]);
  w.child.kill('SIGTERM');
  assert.deepEqual(await exited(w.child), { code: 0, signal: null }, w.output());
  const mods = (await readFile(out, 'utf8')).split('\n');
  // The worker really started: its queue consumer and the engine were loaded.
  assert.ok(
    mods.some((m) => m.includes('/src/jobs/worker.ts')),
    'worker.ts loaded',
  );
  assert.ok(
    mods.some((m) => m.includes('/node_modules/pg-boss/')),
    'pg-boss loaded',
  );
  assert.ok(
    mods.some((m) => m.includes('/node_modules/onnxruntime-node/')),
    'onnxruntime-node loaded',
  );
  assert.deepEqual(apollo(mods), [], 'no @apollo/server module');
});
