/**
 * Shared wiring of `harmon generate` / `harmon describe`: resolve the model (explicit dir,
 * HARMON_MODEL, or the demo model built on first use), start the engine on EXECUTION_PROVIDERS
 * (a requested provider that is missing stops the command), turn Ctrl-C into a
 * cancellation, and always close the worker so the process can exit.
 */

import { loadConfig } from '../../config/config.ts';
import { HarmonEngine } from '../../harmon/engine.ts';
import { resolveModelDir } from '../../onnx/demo-model.ts';
import { AppError } from '../../shared/errors.ts';

export async function withEngine<T>(
  model: string | undefined,
  fn: (engine: HarmonEngine, signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const { executionProviders } = loadConfig();
  const { dir } = await resolveModelDir(model, {
    onBuild: (d) =>
      process.stderr.write(`harmon: building the random-weight demo model into ${d} (first use only)\n`),
  });
  const engine = await HarmonEngine.start({ modelDir: dir, runtime: { executionProviders } });
  const ac = new AbortController();
  const onSigint = () => ac.abort();
  process.once('SIGINT', onSigint);
  try {
    return await fn(engine, ac.signal);
  } finally {
    process.off('SIGINT', onSigint);
    await engine.close();
  }
}

/** Number option: commander gives strings; zod reports NaN as a bad value with the field name. */
export function num(v: string): number {
  return v.trim() === '' ? Number.NaN : Number(v);
}

export function readError(path: string, e: unknown): AppError {
  return new AppError(
    'BAD_USER_INPUT',
    `Cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`,
    { cause: e },
  );
}
