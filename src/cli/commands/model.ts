/**
 * `harmon random`, `harmon tiny` and `harmon convert`: build model directories (see
 * src/onnx/tiny.ts, convert.ts). `random` writes seeded random weights at any registered
 * variant's real shapes, in the format `convert` writes: how the 0.5B/1.5B path is exercised
 * where no checkpoint can be downloaded. `tiny` is `random --variant tiny`.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { VARIANTS, type VariantName } from '../../model/config.ts';
import { convertCheckpoint } from '../../onnx/convert.ts';
import { buildTinyModel } from '../../onnx/tiny.ts';
import { AppError } from '../../shared/errors.ts';
import { progressBar } from '../progress.ts';

function parseSeed(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 2 ** 32 - 1)
    throw new AppError('BAD_USER_INPUT', `--seed must be an integer in [0, 2^32), got "${v}"`);
  return n;
}

function parseDtype(v: string): 'float32' | 'float16' {
  if (v === 'fp32' || v === 'float32') return 'float32';
  if (v === 'fp16' || v === 'float16') return 'float16';
  throw new AppError('BAD_USER_INPUT', `--dtype must be fp16 or fp32, got "${v}"`);
}

export function parseVariant(v: string): VariantName {
  if (Object.hasOwn(VARIANTS, v)) return v as VariantName;
  throw new AppError(
    'BAD_USER_INPUT',
    `--variant must be one of ${Object.keys(VARIANTS).join(', ')}, got "${v}"`,
  );
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size;
  return total;
}

interface RandomOpts {
  out: string;
  seed: string;
  dtype: string;
}

async function writeRandom(variant: string, o: RandomOpts): Promise<void> {
  // Every option is checked before minutes of building start.
  const config = VARIANTS[parseVariant(variant)];
  const seed = parseSeed(o.seed);
  const dtype = parseDtype(o.dtype);
  const bar = progressBar(variant);
  const t0 = Date.now();
  const m = await buildTinyModel({ outDir: o.out, seed, config, dtype, onProgress: bar.update }).finally(() =>
    bar.stop(),
  );
  const gb = (await dirBytes(o.out)) / 1e9;
  process.stderr.write(
    `wrote ${m.modelId}: ${Object.keys(m.graphs).length} graphs, ${gb.toFixed(2)} GB in ` +
      `${((Date.now() - t0) / 1000).toFixed(1)} s (random-weight demo model: outputs are noise)\n`,
  );
  process.stdout.write(`${o.out}\n`);
}

export function register(program: Command): void {
  program
    .command('random')
    .description('write a Harmon of any registered size with seeded random weights (convert format)')
    .requiredOption('--variant <name>', `model size: ${Object.keys(VARIANTS).join(' | ')}`)
    .requiredOption('--out <dir>', 'output model directory')
    .option('--seed <n>', 'weight seed', '0')
    .option('--dtype <fp32|fp16>', 'weight storage dtype', 'fp32')
    .action((o: RandomOpts & { variant: string }) => writeRandom(o.variant, o));

  program
    .command('tiny')
    .description('write a tiny Harmon (real architecture, seeded random weights) for tests and demos')
    .requiredOption('--out <dir>', 'output model directory')
    .option('--seed <n>', 'weight seed', '0')
    .option('--dtype <fp32|fp16>', 'weight storage dtype', 'fp32')
    .action((o: RandomOpts) => writeRandom('tiny', o));

  program
    .command('convert')
    .description('convert official Harmon checkpoints (.pth / HF safetensors + kl16.ckpt) to ONNX')
    .requiredOption(
      '--checkpoint <file>',
      'harmon_0.5b.pth, harmon_1.5b.pth or an HF-format safetensors file/dir',
    )
    .option('--vae <file>', 'kl16.ckpt (needed unless the checkpoint holds vae.* tensors)')
    .requiredOption('--variant <0.5b|1.5b>', 'model size')
    .option('--dtype <fp16|fp32>', 'weight storage dtype', 'fp32')
    .requiredOption('--out <dir>', 'output model directory')
    .action(async (o: { checkpoint: string; vae?: string; variant: string; dtype: string; out: string }) => {
      const bar = progressBar('convert');
      const m = await convertCheckpoint({
        checkpoint: o.checkpoint,
        vae: o.vae,
        variant: o.variant,
        dtype: parseDtype(o.dtype),
        outDir: o.out,
        onProgress: bar.update,
      });
      bar.stop();
      process.stderr.write(`converted ${m.modelId}: ${Object.keys(m.graphs).length} graphs\n`);
      process.stdout.write(`${o.out}\n`);
    });
}
