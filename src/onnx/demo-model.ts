/**
 * The random-weight demo model used when no model is configured (no `--model`, no HARMON_MODEL):
 * built once with `buildTinyModel` into a cache folder and reused afterwards. It is the real
 * architecture with tiny widths and seeded random weights, so everything runs end to end, but
 * its images and text are noise; every surface that uses it must say so (DEMO_NOTICE).
 *
 * Cache folder: `$HARMON_HOME/models/<name>` when HARMON_HOME is set, else `~/.cache/harmon/<name>`.
 * Building goes to a private temporary sibling and is renamed into place, so two processes
 * starting at once never see a half-written model; the loser of the rename discards its copy.
 */
import { randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { HarmonConfig } from '../model/config.ts';
import { DEMO_CONFIG, DEMO_SEED } from '../model/demo.ts';
import { readManifest, verifyModelDir } from '../model/model-dir.ts';
import { builderFingerprint, buildTinyModel } from './tiny.ts';

export const DEMO_MODEL_NAME = 'tiny-demo';

export function demoModelDir(name = DEMO_MODEL_NAME, env: NodeJS.ProcessEnv = process.env): string {
  return env.HARMON_HOME ? join(env.HARMON_HOME, 'models', name) : join(homedir(), '.cache', 'harmon', name);
}

async function usable(dir: string): Promise<boolean> {
  try {
    const manifest = await readManifest(dir);
    await verifyModelDir(dir, manifest, { hashes: false }); // the runtime hashes at load
    // A demo cached by an older version of the builders (an older graph layout or format version)
    // is rebuilt: it is cheap, and stale graphs would hide improvements.
    return manifest.source?.builder === builderFingerprint();
  } catch {
    return false;
  }
}

export interface DemoModelOptions {
  /** Target directory (default: demoModelDir(name)). */
  dir?: string;
  name?: string;
  config?: HarmonConfig;
  onBuild?: (dir: string) => void;
}

/** Returns the demo model's directory, building it first if absent or broken. */
export async function ensureDemoModel(opts: DemoModelOptions = {}): Promise<string> {
  const dir = opts.dir ?? demoModelDir(opts.name);
  if (await usable(dir)) return dir;
  opts.onBuild?.(dir);
  const tmp = join(dirname(dir), `.${basename(dir)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await buildTinyModel({ outDir: tmp, seed: DEMO_SEED, config: opts.config ?? DEMO_CONFIG });
    if (!(await usable(dir))) {
      await rm(dir, { recursive: true, force: true }); // a broken leftover
      try {
        await rename(tmp, dir);
      } catch (e) {
        if (!(await usable(dir))) throw e; // someone else won the race only if theirs is complete
      }
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return dir;
}

/**
 * The model to serve: an explicit directory, else HARMON_MODEL, else the demo model (built on
 * first use). `demo` says whether the fallback was taken; the manifest's own `demo` flag is the
 * authority for what a model is.
 */
export async function resolveModelDir(
  explicit?: string,
  opts: DemoModelOptions & { env?: NodeJS.ProcessEnv } = {},
): Promise<{ dir: string; fallback: boolean }> {
  const env = opts.env ?? process.env;
  if (explicit) return { dir: explicit, fallback: false };
  if (env.HARMON_MODEL) return { dir: env.HARMON_MODEL, fallback: false };
  return {
    dir: await ensureDemoModel({ ...opts, dir: opts.dir ?? demoModelDir(opts.name, env) }),
    fallback: true,
  };
}
