/** `harmon random` as a real process: the model directory it writes, and its refusals. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { HARMON_TINY } from '../../src/model/config.ts';
import { randomModelId } from '../../src/model/demo.ts';
import { readManifest, verifyModelDir } from '../../src/model/model-dir.ts';
import { runHarmon } from '../helpers/cli-process.ts';

const root = mkdtempSync(join(tmpdir(), 'harmon-random-'));
after(() => rmSync(root, { recursive: true, force: true }));

const harmon = (args: string[]) => runHarmon(args, { PATH: process.env.PATH ?? '', HOME: root });

test('random --variant tiny writes a complete, verifiable model directory with its seed in the id', async () => {
  const out = join(root, 'tiny-fp16');
  const r = await harmon(['random', '--variant', 'tiny', '--out', out, '--seed', '7', '--dtype', 'fp16']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${out}\n`); // stdout stays machine-readable; progress went to stderr
  assert.match(r.stderr, /wrote harmon-tiny-demo-seed7: \d+ graphs/);
  const m = await readManifest(out);
  assert.equal(m.modelId, randomModelId('tiny', 7));
  assert.deepEqual([m.variant, m.dtype, m.demo], ['tiny', 'float16', true]);
  assert.deepEqual(m.config, HARMON_TINY);
  const files = await verifyModelDir(out, m, { hashes: true });
  assert.ok(files.length >= Object.keys(m.graphs).length);
});

test('a bad variant, seed or dtype is refused with exit 2 before anything is written', async () => {
  const out = join(root, 'never');
  for (const [args, message] of [
    [['--variant', '7b'], /BAD_USER_INPUT: --variant must be one of 0\.5b, 1\.5b, tiny, small, got "7b"/],
    [['--variant', 'small', '--seed', '-1'], /BAD_USER_INPUT: --seed must be an integer/],
    [['--variant', '1.5b', '--dtype', 'bf16'], /BAD_USER_INPUT: --dtype must be fp16 or fp32/],
  ] as const) {
    const r = await harmon(['random', ...args, '--out', out]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, message);
  }
  assert.equal(existsSync(out), false);
});
