/**
 * `harmon convert`: official Harmon checkpoints -> a model directory, with no Python.
 *
 *   harmon_*.pth / HF safetensors ─┐
 *                                  ├─ MergedWeights ─ validateWeights (all problems at once) ─ exportHarmon
 *   kl16.ckpt (VAE, optional) ─────┘      (VAE under 'vae.')
 *
 * The .pth files carry no VAE (the training wrapper drops it), so either `--vae kl16.ckpt` is
 * given or the checkpoint must be an HF-format export that holds `vae.*` itself.
 */

import { VARIANTS, type VariantName } from '../model/config.ts';
import type { Manifest } from '../model/manifest.ts';
import { IMAGE_TOKEN_ID, TOKENIZER_SOURCE } from '../model/tokens.ts';
import { AppError } from '../shared/errors.ts';
import { exportHarmon } from './export-model.ts';
import type { WeightDType } from './graph/context.ts';
import { expectedHarmonTensors } from './harmon-keys.ts';
import { MergedWeights, type WeightPart } from './weights/merged.ts';
import { openCheckpoint } from './weights/open-checkpoint.ts';
import { validateWeights } from './weights/validate.ts';

export interface ConvertOptions {
  checkpoint: string;
  vae?: string;
  variant: string;
  dtype: WeightDType;
  outDir: string;
  modelId?: string;
  onProgress?: (done: number, total: number, label: string) => void;
}

export async function convertCheckpoint(opts: ConvertOptions): Promise<Manifest> {
  // tiny/small are accepted so tests can round-trip synthetic checkpoints of those shapes.
  if (!(opts.variant in VARIANTS)) {
    throw new AppError('BAD_USER_INPUT', `--variant must be 0.5b or 1.5b, got "${opts.variant}"`);
  }
  const config = VARIANTS[opts.variant as VariantName];
  const main = openCheckpoint(opts.checkpoint);
  const parts: WeightPart[] = [{ source: main }];
  const mainHasVae = main.names().some((n) => n.startsWith('vae.'));
  if (opts.vae) {
    if (mainHasVae)
      throw new AppError('BAD_USER_INPUT', `${opts.checkpoint} already contains vae.* tensors; drop --vae`);
    parts.push({ source: openCheckpoint(opts.vae), prefix: 'vae.' });
  } else if (!mainHasVae) {
    main.close();
    throw new AppError(
      'BAD_USER_INPUT',
      `${opts.checkpoint} holds no VAE (harmon_*.pth files never do): pass --vae kl16.ckpt`,
    );
  }
  const weights = new MergedWeights(parts);
  try {
    validateWeights(weights, expectedHarmonTensors(config, { includeVae: true, vaePrefix: 'vae.' }));
    return await exportHarmon(config, weights, {
      outDir: opts.outDir,
      modelId: opts.modelId ?? `harmon-${opts.variant}`,
      weightDType: opts.dtype,
      demo: false,
      vaePrefix: 'vae.',
      imageTokenId: IMAGE_TOKEN_ID,
      tokenizerSource: TOKENIZER_SOURCE,
      source: { checkpoint: opts.checkpoint, vae: opts.vae ?? null },
      onProgress: (done, total, graph) => opts.onProgress?.(done, total, graph),
    });
  } finally {
    weights.close();
  }
}
