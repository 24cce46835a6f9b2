/**
 * One tiny random-weight Harmon per test file, built into a fresh temp dir (≈2 s) and removed
 * after. The seed is fixed so the reference test can rebuild the same weights in memory.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { HarmonModel } from '../../src/harmon/harmon-model.ts';
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

export interface TinyModel {
  readonly fx: TinyFixture;
  readonly model: HarmonModel;
}

/**
 * The usual per-file setup: registers before/after hooks that build the fixture and open it as
 * a HarmonModel, closing and removing both afterwards. Read `fx`/`model` inside tests only (they
 * exist once the before hook has run).
 */
export function useTinyModel(): TinyModel {
  let fx: TinyFixture | undefined;
  let model: HarmonModel | undefined;
  before(async () => {
    fx = await buildTinyFixture();
    model = await HarmonModel.open(fx.dir);
  });
  after(async () => {
    await model?.close();
    await fx?.cleanup();
  });
  const ready = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error('tiny model fixture used before its before() hook ran');
    return v;
  };
  return {
    get fx() {
      return ready(fx);
    },
    get model() {
      return ready(model);
    },
  };
}
