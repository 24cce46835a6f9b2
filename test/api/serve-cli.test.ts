// `harmon serve` on embedded defaults (PGlite + s3rver + demo model under a temp HARMON_HOME), as a
// child process: key via `harmon keys create`, generate over HTTP, the PNG via its presigned URL.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import sharp from 'sharp';

const run = promisify(execFile);
const home = mkdtempSync(join(tmpdir(), 'harmon-serve-'));
const env = {
  ...process.env,
  HARMON_HOME: home,
  LOG_LEVEL: 'warn',
  DATABASE_URL: '',
  S3_BUCKET: '',
  S3_ENDPOINT: '',
  HARMON_MODEL: '',
};
const cli = ['--import', 'tsx', 'src/cli/main.ts'];
let child: ChildProcess | undefined;

after(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  rmSync(home, { recursive: true, force: true });
});

async function gql(url: string, key: string, query: string) {
  const r = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query }),
  });
  return (await r.json()) as { data?: Record<string, never>; errors?: unknown[] };
}

test('harmon serve (embedded defaults) serves the generate flow and stops cleanly on SIGTERM', {
  timeout: 120_000,
}, async () => {
  const proc = spawn(process.execPath, [...cli, 'serve', '--port', '0'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = proc;
  let stderr = '';
  proc.stderr?.on('data', (d) => (stderr += d));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout?.on('data', (d) => {
      out += d;
      const m = /harmon listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    proc.once('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr.slice(-2000)}`)));
  });

  const keys = await run(process.execPath, [...cli, 'keys', 'create', '--tenant', 'cli-tenant'], { env });
  const key = keys.stdout.trim().split('\n').at(-1) as string;
  assert.match(key, /^hmn_[0-9a-f]{12}_/);

  const models = await gql(url, key, '{ models { id demo default } }');
  assert.deepEqual(models.data?.models, [{ id: 'harmon-tiny-demo-seed0', demo: true, default: true }]);
  const g = await gql(
    url,
    key,
    'mutation { generate(input: { prompt: "a boat", size: 64, steps: 3 }) { id } }',
  );
  const id = (g.data?.generate as unknown as { id: string } | undefined)?.id;
  assert.ok(id, JSON.stringify(g));
  let job: { status: string; images: { url: string }[] } | undefined;
  for (let i = 0; i < 120; i++) {
    const r = await gql(url, key, `{ job(id: "${id}") { status images { url } } }`);
    job = r.data?.job as unknown as typeof job;
    if (job && ['SUCCEEDED', 'FAILED', 'CANCELED'].includes(job.status)) break;
    await new Promise((res) => setTimeout(res, 500));
  }
  assert.equal(job?.status, 'SUCCEEDED');
  const png = Buffer.from(await (await fetch(job.images[0].url)).arrayBuffer());
  const meta = await sharp(png).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 64, 64]);

  const code = await new Promise<number | null>((resolve) => {
    proc.once('exit', (c) => resolve(c));
    proc.kill('SIGTERM');
  });
  assert.equal(code, 0, stderr.slice(-2000));
});
