/**
 * One tiny random-weight Harmon per test file, built into a fresh temp dir (≈2 s) and removed
 * after. The seed is fixed so the reference test can rebuild the same weights in memory.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTinyModel } from '../../src/onnx/tiny.ts';

export const TINY_SEED = 3;

export interface TinyFixture {
  root: string;
  dir: string;
  cleanup(): Promise<void>;
}

export async function buildTinyFixture(): Promise<TinyFixture> {
  const root = await mkdtemp(join(tmpdir(), 'harmon-pipeline-'));
  const dir = join(root, 'tiny');
  await buildTinyModel({ outDir: dir, seed: TINY_SEED });
  return { root, dir, cleanup: () => rm(root, { recursive: true, force: true }) };
}
