/** `harmon …` as a real child process, for tests that check what a user at a shell would see. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const HARMON_BIN = fileURLToPath(new URL('../../bin/harmon.js', import.meta.url));

export type CliRun = { code: number | null; stdout: string; stderr: string };

/** Runs bin/harmon.js with exactly `env` (nothing inherited); SIGKILLed after `timeoutMs`. */
export function runHarmon(args: string[], env: Record<string, string>, timeoutMs = 120_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HARMON_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
