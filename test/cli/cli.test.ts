// Spawns the real `harmon` CLI. Environment is built from scratch so the host's variables
// (DATABASE_URL, S3_*) cannot leak in.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { HARMON_BIN, runHarmon } from '../helpers/cli-process.ts';
import { type FreshDatabase, freshDatabase } from '../helpers/pg.ts';

const baseEnv = {
  PATH: process.env.PATH ?? '',
  HOME: process.env.HOME ?? '',
  LOG_LEVEL: 'warn',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};
const harmon = (args: string[], env: Record<string, string>, timeoutMs = 60_000) =>
  runHarmon(args, { ...baseEnv, ...env }, timeoutMs);

let db: FreshDatabase;
before(async () => {
  db = await freshDatabase({ migrate: false });
});
after(() => db.drop());

test('bad config: exit != 0 and one line naming the variable', async () => {
  const r = await harmon(['serve'], { DATABASE_URL: 'notaurl' });
  assert.notEqual(r.code, 0);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /BAD_CONFIG.*DATABASE_URL/);
  const r2 = await harmon(['keys', 'create', '--tenant', 'x'], { PORT: 'abc' });
  assert.notEqual(r2.code, 0);
  assert.match(r2.stderr.trim(), /^harmon: BAD_CONFIG: .*PORT[^\n]*$/);
});

test('keys create prints the key once, alone on the last line; only its hash is stored', async () => {
  const r = await harmon(['keys', 'create', '--tenant', 'acme'], { DATABASE_URL: db.url });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  const key = lines.at(-1) ?? '';
  assert.match(key, /^hmn_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
  assert.equal(r.stdout.split(key).length - 1, 1, 'key printed exactly once');
  assert.ok(!r.stderr.includes(key));
  const rows = await db.prisma.apiKey.findMany({ include: { tenant: true } });
  assert.equal(rows.length, 1);
  assert.equal(rows[0].tenant.name, 'acme');
  const secret = key.split('_').slice(2).join('_');
  assert.equal(rows[0].secretHash, createHash('sha256').update(secret).digest('hex'));
  assert.ok(!JSON.stringify(rows).includes(secret));
});

test('harmon serve with no env: /healthz 200, keys work with and without it, restart keeps data', {
  timeout: 600_000,
}, async () => {
  const home = mkdtempSync(join(tmpdir(), 'harmon-home-'));
  const env = { HARMON_HOME: home, PORT: '0' };
  try {
    const first = await startServe(env);
    try {
      const health = await fetch(`${first.url}/healthz`);
      assert.equal(health.status, 200);
      assert.deepEqual(((await health.json()) as { database: string; storage: string }).database, 'ok');
      // With the server running, the CLI borrows its database socket.
      const k1 = await harmon(['keys', 'create', '--tenant', 'acme'], env);
      assert.equal(k1.code, 0, k1.stderr);
      assert.match(k1.stdout, /created tenant acme/);
    } finally {
      assert.equal(await first.stop(), 0);
    }
    assert.ok(!existsSync(join(home, 'server.json')), 'server.json removed on clean shutdown');
    // Without a server, the CLI opens the data dir itself and sees the same tenant.
    const k2 = await harmon(['keys', 'create', '--tenant', 'acme'], env);
    assert.equal(k2.code, 0, k2.stderr);
    assert.doesNotMatch(k2.stdout, /created tenant/);

    const second = await startServe(env);
    try {
      assert.equal((await fetch(`${second.url}/healthz`)).status, 200);
      // Both keys survived the restart.
      const k3 = await harmon(['keys', 'create', '--tenant', 'acme'], env);
      assert.doesNotMatch(k3.stdout, /created tenant/);
    } finally {
      assert.equal(await second.stop(), 0);
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

/**
 * Starts `harmon serve`, resolves once /healthz answers 200. The first start builds the demo
 * model (~13 s of CPU), so on a busy machine the wait is generous: this checks readiness, not speed.
 */
async function startServe(
  env: Record<string, string>,
): Promise<{ url: string; stop(): Promise<number | null> }> {
  const child = spawn(process.execPath, [HARMON_BIN, 'serve'], {
    env: { ...baseEnv, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const stop = async () => {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  const started = Date.now();
  while (Date.now() - started < 180_000) {
    const m = /listening on (http:\/\/\S+)/.exec(out);
    if (m) {
      const r = await fetch(`${m[1]}/healthz`).catch(() => null);
      if (r?.status === 200) return { url: m[1], stop };
    }
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await stop();
  throw new Error(`harmon serve did not answer /healthz within 180 s:\n${out}`);
}
