/** `harmon tiny` and `harmon convert`: build model directories (see src/onnx/tiny.ts, convert.ts). */
import type { Command } from 'commander';
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

export function register(program: Command): void {
  program
    .command('tiny')
    .description('write a tiny Harmon (real architecture, seeded random weights) for tests and demos')
    .requiredOption('--out <dir>', 'output model directory')
    .option('--seed <n>', 'weight seed', '0')
    .option('--dtype <fp32|fp16>', 'weight storage dtype', 'fp32')
    .action(async (o: { out: string; seed: string; dtype: string }) => {
      const bar = progressBar('tiny');
      const t0 = Date.now();
      const m = await buildTinyModel({
        outDir: o.out,
        seed: parseSeed(o.seed),
        dtype: parseDtype(o.dtype),
        onProgress: bar.update,
      });
      bar.stop();
      process.stderr.write(
        `wrote ${Object.keys(m.graphs).length} graphs in ${Date.now() - t0} ms (random-weight demo model)\n`,
      );
      process.stdout.write(`${o.out}\n`);
    });

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
