/**
 * `harmon generate` / `harmon describe` as a user runs them (spawned CLI, bounded time), plus the
 * demo-model fallback: built on first use under HARMON_HOME, reused afterwards, and announced.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { demoModelDir, ensureDemoModel } from '../../src/onnx/demo-model.ts';
import { buildTinyFixture, type TinyFixture } from './tiny-model-fixture.ts';

const run = promisify(execFile);
let fx: TinyFixture;

before(async () => {
  fx = await buildTinyFixture();
});
after(async () => {
  await fx?.cleanup();
});

async function harmon(args: string[], env: Record<string, string> = {}) {
  const clean = { ...process.env, HARMON_MODEL: '', ...env };
  try {
    const r = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      env: clean,
      timeout: 60_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout: string; stderr: string };
    return { code: err.code ?? -1, stdout: err.stdout, stderr: err.stderr };
  }
}

test('generate: same seed → identical bytes, seed 8 differs, 64×64 RGB, --count 2 writes two files', async () => {
  const a = join(fx.root, 'a.png');
  const a2 = join(fx.root, 'a2.png');
  const common = ['generate', '--model', fx.dir, '--prompt', 'a cat', '--steps', '8', '--size', '64'];
  const r1 = await harmon([...common, '--seed', '7', '--out', a]);
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(r1.stdout.trim(), a);
  assert.match(r1.stderr, /random-weight demo model/);
  const [r2, r3] = await Promise.all([
    harmon([...common, '--seed', '7', '--out', a2]),
    harmon([...common, '--seed', '8', '--count', '2', '--out', join(fx.root, 'b.png')]),
  ]);
  assert.equal(r2.code, 0, r2.stderr);
  assert.deepEqual(await readFile(a), await readFile(a2));
  const meta = await sharp(a).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height, meta.channels], ['png', 64, 64, 3]);
  assert.equal(r3.code, 0, r3.stderr);
  const paths = r3.stdout.trim().split('\n');
  assert.deepEqual(paths, [join(fx.root, 'b-1.png'), join(fx.root, 'b-2.png')]);
  assert.notDeepEqual(await readFile(a), await readFile(paths[0]));
  assert.notDeepEqual(await readFile(paths[0]), await readFile(paths[1]));
});

test('bad input exits with a coded one-line error', async () => {
  const r = await harmon(['generate', '--model', fx.dir, '--prompt', 'x', '--size', '17']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^harmon: BAD_USER_INPUT: .*multiple of 16/m);
  const m = await harmon(['generate', '--model', join(fx.root, 'nope'), '--prompt', 'x']);
  assert.equal(m.code, 4);
  assert.match(m.stderr, /MODEL_INVALID/);
  const img = await harmon(['describe', '--model', fx.dir, '--image', join(fx.root, 'absent.png')]);
  assert.equal(img.code, 2);
});

test('describe without --model builds the demo model under HARMON_HOME, prints text and stops at 16 tokens', async () => {
  const home = join(fx.root, 'home');
  const png = join(fx.root, 'in.png');
  await sharp({ create: { width: 40, height: 72, channels: 3, background: { r: 200, g: 30, b: 90 } } })
    .png()
    .toFile(png);
  const r = await harmon(['describe', '--image', png, '--max-tokens', '16', '--size', '64'], {
    HARMON_HOME: home,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /building the random-weight demo model/);
  assert.match(r.stderr, /random-weight demo model; its outputs are noise/);
  const n = Number(/harmon: (\d+) tokens/.exec(r.stderr)?.[1]);
  assert.ok(n >= 1 && n <= 16, r.stderr);
  assert.ok(r.stdout.trim().length > 0, 'text on stdout');
  // Second use: reused as is, not rebuilt.
  const dir = demoModelDir(undefined, { HARMON_HOME: home });
  const before = (await stat(join(dir, 'manifest.json'))).mtimeMs;
  assert.equal(await ensureDemoModel({ dir }), dir);
  assert.equal((await stat(join(dir, 'manifest.json'))).mtimeMs, before);
});
