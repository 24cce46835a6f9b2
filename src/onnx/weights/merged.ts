/**
 * Presents several checkpoints as one WeightSource: the Harmon .pth holds llm/mar/proj_* keys and
 * kl16.ckpt holds the VAE with un-prefixed keys, while the builders read the VAE under 'vae.'
 * (the HF-format layout). A name present in two parts is an error, never a silent pick.
 */
import { AppError } from '../../shared/errors.ts';
import type { WeightEntry, WeightSource } from './types.ts';

export interface WeightPart {
  source: WeightSource;
  /** Prepended to every name of this part (e.g. 'vae.' for kl16.ckpt). */
  prefix?: string;
  /** Only names for which this returns true are exposed (e.g. drop a checkpoint's loss.* keys). */
  filter?: (name: string) => boolean;
}

export class MergedWeights implements WeightSource {
  private readonly map = new Map<string, WeightEntry>();

  constructor(private readonly parts: WeightPart[]) {
    for (const part of parts) {
      for (const inner of part.source.names()) {
        if (part.filter && !part.filter(inner)) continue;
        const name = (part.prefix ?? '') + inner;
        if (this.map.has(name))
          throw new AppError('WEIGHTS_INVALID', `tensor ${name} is present in two checkpoints`);
        const entry = part.source.get(inner)!;
        this.map.set(name, { name, dtype: entry.dtype, shape: entry.shape, read: () => entry.read() });
      }
    }
  }

  names(): string[] {
    return [...this.map.keys()];
  }

  get(name: string): WeightEntry | undefined {
    return this.map.get(name);
  }

  close(): void {
    for (const p of this.parts) p.source.close();
  }
}
