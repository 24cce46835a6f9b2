/**
 * `harmon tiny`: a Harmon of the real architecture with small widths (HARMON_TINY in config.ts)
 * and seeded random weights, in the same model-directory format as converted checkpoints, so
 * every later component runs unchanged on it. Outputs are noise: the manifest says `demo: true`.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HARMON_TINY, type HarmonConfig } from '../model/config.ts';
import { randomModelId } from '../model/demo.ts';
import type { Manifest } from '../model/manifest.ts';
import { IMAGE_TOKEN_ID, TOKENIZER_SOURCE } from '../model/tokens.ts';
import { exportHarmon } from './export-model.ts';
import type { WeightDType } from './graph/context.ts';
import { randomHarmonWeights } from './weights/random.ts';

let fingerprint: string | undefined;

/**
 * sha256 over the graph-building sources (src/onnx/** and the model format in src/model/**), so a
 * cached demo model built by an older version of the builders or configs (e.g. before a faster
 * sampler layout) is detected and rebuilt. Computed once per process: the sources do not change
 * under a running process, and ensureDemoModel asks up to three times (check, build, re-check).
 */
export function builderFingerprint(): string {
  if (fingerprint) return fingerprint;
  const hash = createHash('sha256');
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts')) hash.update(name).update(readFileSync(path));
    }
  };
  for (const folder of ['.', '../model/']) walk(fileURLToPath(new URL(folder, import.meta.url)));
  fingerprint = hash.digest('hex').slice(0, 16);
  return fingerprint;
}

export interface TinyOptions {
  outDir: string;
  seed?: number;
  config?: HarmonConfig;
  dtype?: WeightDType;
  onProgress?: (done: number, total: number, label: string) => void;
}

export async function buildTinyModel(opts: TinyOptions): Promise<Manifest> {
  const config = opts.config ?? HARMON_TINY;
  const seed = opts.seed ?? 0;
  const weights = randomHarmonWeights(config, seed, { includeVae: true, vaePrefix: 'vae.' });
  return exportHarmon(config, weights, {
    outDir: opts.outDir,
    modelId: randomModelId(config.variant, seed),
    weightDType: opts.dtype ?? 'float32',
    demo: true,
    vaePrefix: 'vae.',
    imageTokenId: IMAGE_TOKEN_ID,
    tokenizerSource: TOKENIZER_SOURCE,
    source: { random: true, seed, builder: builderFingerprint() },
    onProgress: opts.onProgress,
  });
}
