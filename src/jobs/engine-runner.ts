/**
 * JobRunner over real Harmon engines: one HarmonEngine (worker thread, model loaded once) per
 * model directory; the first directory's model is the default. `harmon worker` and the
 * in-process worker of `harmon serve` build it from HARMON_MODEL (or the demo model).
 */
import { type EngineOptions, HarmonEngine } from '../harmon/engine.ts';
import { AppError } from '../shared/errors.ts';
import type { JobRunner } from './runner.ts';

export interface EngineRunner extends JobRunner {
  engines: HarmonEngine[];
  close(): Promise<void>;
}

export interface EngineRunnerOptions {
  /** Preview every N MAR steps (0/undefined: no previews). */
  previewEvery?: number;
  /** Session options for every engine (execution providers from EXECUTION_PROVIDERS). */
  runtime?: EngineOptions['runtime'];
}

export async function createEngineRunner(
  modelDirs: string[],
  options: EngineRunnerOptions = {},
): Promise<EngineRunner> {
  if (modelDirs.length === 0)
    throw new AppError('BAD_CONFIG', 'the worker needs at least one model directory');
  const engines: HarmonEngine[] = [];
  try {
    for (const dir of modelDirs)
      engines.push(await HarmonEngine.start({ modelDir: dir, runtime: options.runtime }));
  } catch (e) {
    await Promise.all(engines.map((x) => x.close()));
    throw e;
  }
  const byId = new Map(engines.map((x) => [x.info.modelId, x]));
  const pick = (modelId: string) => {
    const engine = byId.get(modelId);
    if (!engine)
      throw new AppError(
        'BAD_USER_INPUT',
        `model "${modelId}" is not served here; available: ${[...byId.keys()].join(', ')}`,
      );
    return engine;
  };
  return {
    engines,
    models: () => engines.map((x) => x.info.modelId),
    generate: (modelId, input, o) =>
      pick(modelId).generate(input, {
        signal: o.signal,
        onEvent: o.onEvent,
        previewEvery: options.previewEvery,
      }),
    batchKey: (modelId, input) => pick(modelId).batchKey(input),
    // One MAR loop for the whole batch (src/harmon/generate.ts); each item keeps its signal and events.
    generateBatch: async (modelId, items) =>
      pick(modelId).generateBatch(
        items.map(({ input, options: o }) => ({
          input,
          options: { signal: o.signal, onEvent: o.onEvent, previewEvery: options.previewEvery },
        })),
      ),
    describe: (modelId, image, input, o) =>
      pick(modelId).describe(image, input, { signal: o.signal, onEvent: o.onEvent }),
    close: async () => {
      await Promise.all(engines.map((x) => x.close()));
    },
  };
}
