/**
 * The machine a bench ran on, recorded with every result: figures from a 2-core shared VM and a
 * GPU box are not comparable, and a report that omits which is which misleads.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  /** Cores the process may actually use (cgroup/affinity aware where Node knows it). */
  availableParallelism: number;
  memoryGiB: number;
  platform: string;
  arch: string;
  nodeVersion: string;
  onnxruntimeVersion: string;
  executionProvider: string;
  date: string;
  /** Git commit of the code measured, with "+dirty" for uncommitted changes; null outside a checkout. */
  revision: string | null;
}

/** The checkout's HEAD (and whether the tree has local changes), so a figure names its code. */
export function sourceRevision(cwd = process.cwd()): string | null {
  try {
    const git = (...args: string[]) =>
      execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const head = git('rev-parse', '--short=12', 'HEAD');
    return git('status', '--porcelain', '--untracked-files=no') ? `${head}+dirty` : head;
  } catch {
    return null; // not a git checkout (e.g. an installed package): the date still dates the figures
  }
}

/** Version of a dependency from its own package.json (found by walking up from its entry). */
export function packageVersion(name: string): string {
  try {
    const require = createRequire(import.meta.url);
    let dir = dirname(require.resolve(name));
    for (let i = 0; i < 6; i++) {
      try {
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
          name?: string;
          version?: string;
        };
        if (pkg.name === name && pkg.version) return pkg.version;
      } catch {
        // no package.json at this level; keep walking up
      }
      dir = dirname(dir);
    }
  } catch {
    // not installed: reported as unknown rather than failing the bench
  }
  return 'unknown';
}

export function machineInfo(executionProvider = 'cpu', now = new Date()): MachineInfo {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    availableParallelism: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    platform: `${os.type()} ${os.release()}`,
    arch: os.arch(),
    nodeVersion: process.version,
    onnxruntimeVersion: packageVersion('onnxruntime-node'),
    executionProvider,
    date: now.toISOString(),
    revision: sourceRevision(),
  };
}
