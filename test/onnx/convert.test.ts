/**
 * Converter round trip on synthetic checkpoints with the official key names: a torch-style .pth
 * (llm/mar/proj) + kl16-style .ckpt (un-prefixed VAE under "model"), and an HF-style safetensors
 * holding everything incl. vae.*. Both must give graph files byte-identical to `harmon tiny`'s
 * for the same weights; broken checkpoints must fail naming every bad tensor.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { HARMON_TINY } from '../../src/model/config.ts';
import { GRAPH_NAMES, type Manifest } from '../../src/model/manifest.ts';
import { convertCheckpoint } from '../../src/onnx/convert.ts';
import { buildTinyModel } from '../../src/onnx/tiny.ts';
import { randomHarmonWeights } from '../../src/onnx/weights/random.ts';
import { ModelRuntime } from '../../src/runtime/sessions.ts';
import { type TensorData, writeSafetensors, writeTorchZip } from '../helpers/checkpoint-writers.ts';

const SEED = 5;
const dir = mkdtempSync(join(tmpdir(), 'convert-'));
let tiny: Manifest;
const all: Record<string, TensorData> = {};

before(async () => {
  tiny = await buildTinyModel({ outDir: join(dir, 'tiny'), seed: SEED });
  const w = randomHarmonWeights(HARMON_TINY, SEED, { includeVae: true, vaePrefix: 'vae.' });
  for (const n of w.names()) all[n] = { shape: w.get(n)!.shape, data: w.get(n)!.read() };
});

function split() {
  const main: Record<string, TensorData> = {};
  const vae: Record<string, TensorData> = {};
  for (const [k, v] of Object.entries(all)) {
    if (k.startsWith('vae.')) vae[k.slice(4)] = v;
    else main[k] = v;
  }
  return { main, vae };
}

function assertSameGraphs(m: Manifest) {
  for (const g of GRAPH_NAMES) {
    assert.ok(m.graphs[g] && tiny.graphs[g], `graph ${g} is exported (optional graphs too)`);
    assert.equal(m.graphs[g]?.sha256, tiny.graphs[g]?.sha256, `graph ${g} differs from harmon tiny`);
  }
}

test('harmon tiny writes every graph and each loads in onnxruntime-node', async () => {
  assert.equal(tiny.demo, true);
  const rt = await ModelRuntime.open(join(dir, 'tiny'));
  await rt.close();
});

test('.pth + kl16.ckpt convert to the same graphs as the tiny builder', async () => {
  const { main, vae } = split();
  writeTorchZip(join(dir, 'harmon_tiny.pth'), main);
  writeTorchZip(join(dir, 'kl16.ckpt'), vae, { nestUnder: 'model' });
  const m = await convertCheckpoint({
    checkpoint: join(dir, 'harmon_tiny.pth'),
    vae: join(dir, 'kl16.ckpt'),
    variant: 'tiny',
    dtype: 'float32',
    outDir: join(dir, 'from-pth'),
  });
  assert.equal(m.demo, false);
  assertSameGraphs(m);
});

test('HF-style safetensors (with vae.*) converts to the same graphs', async () => {
  writeSafetensors(join(dir, 'model.safetensors'), all);
  const m = await convertCheckpoint({
    checkpoint: join(dir, 'model.safetensors'),
    variant: 'tiny',
    dtype: 'float32',
    outDir: join(dir, 'from-st'),
  });
  assertSameGraphs(m);
});

test('a missing and a mis-shaped tensor fail together, by name, with exit code != 0', () => {
  const broken: Record<string, TensorData> = { ...all };
  delete broken['mar.mask_token'];
  broken['llm.model.norm.weight'] = { shape: [3], data: new Float32Array(3) };
  writeSafetensors(join(dir, 'broken.safetensors'), broken);
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli/main.ts',
      'convert',
      '--checkpoint',
      join(dir, 'broken.safetensors'),
      '--variant',
      'tiny',
      '--out',
      join(dir, 'broken-out'),
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /WEIGHTS_INVALID/);
  assert.match(r.stderr, /mar\.mask_token/);
  assert.match(r.stderr, /llm\.model\.norm\.weight/);
});

test('a .pth without --vae and a bad variant are refused with clear messages', async () => {
  const { main } = split();
  writeTorchZip(join(dir, 'novae.pth'), main);
  await assert.rejects(
    convertCheckpoint({
      checkpoint: join(dir, 'novae.pth'),
      variant: 'tiny',
      dtype: 'float32',
      outDir: join(dir, 'x'),
    }),
    /holds no VAE .* pass --vae/,
  );
  await assert.rejects(
    convertCheckpoint({
      checkpoint: join(dir, 'novae.pth'),
      variant: '7b',
      dtype: 'float32',
      outDir: join(dir, 'x'),
    }),
    /--variant must be 0.5b or 1.5b/,
  );
  assert.ok(readFileSync(join(dir, 'tiny', 'manifest.json'), 'utf8').includes('"demo": true'));
});

test('the harmon tiny CLI writes a loadable model directory and says it is a demo', async () => {
  const out = join(dir, 'cli-tiny');
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'tiny', '--out', out, '--seed', '3'],
    {
      encoding: 'utf8',
      timeout: 120_000,
    },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n').at(-1), out);
  assert.match(r.stderr, /random-weight demo model/);
  const rt = await ModelRuntime.open(out);
  assert.equal(rt.manifest.modelId, 'harmon-tiny-demo-seed3');
  await rt.close();
  const bad = spawnSync(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'tiny', '--out', out, '--seed', '-1'],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--seed must be an integer/);
});
