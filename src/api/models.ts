/**
 * The models a deployment serves (HARMON_MODEL, comma-separated model directories), read from each
 * directory's manifest.json without loading any weights: the API never touches the runtime. With
 * no directory configured the worker builds the random-weight tiny demo model, listed here as such.
 */
import { DEMO_CONFIG, DEMO_MODEL_ID } from '../model/demo.ts';
import { readManifestSync } from '../model/model-dir.ts';
import { AppError } from '../shared/errors.ts';

export type ModelInfo = { id: string; dir?: string; demo: boolean; maxImageSize?: number };

/**
 * Each directory's manifest, parsed by the model format's own schema (src/model): a directory
 * without a valid manifest is refused at start (MODEL_INVALID naming the file), not served under
 * a guessed id. With no directory, the worker builds the demo model, whose id and size limit come
 * from the same definition the builder uses.
 */
export function listModels(modelDirs: string[]): ModelInfo[] {
  if (modelDirs.length === 0)
    return [{ id: DEMO_MODEL_ID, demo: true, maxImageSize: DEMO_CONFIG.maxImageSize }];
  return modelDirs.map((dir) => {
    const m = readManifestSync(dir);
    return { id: m.modelId, dir, demo: m.demo, maxImageSize: m.config.maxImageSize };
  });
}

/** The model a request names, or the default (first); unknown ids are the client's mistake. */
export function pickModel(models: ModelInfo[], requested?: string | null): ModelInfo {
  if (requested === undefined || requested === null) return models[0];
  const m = models.find((x) => x.id === requested);
  if (!m) {
    throw new AppError(
      'BAD_USER_INPUT',
      `model "${requested}" is not served here; choose one of: ${models.map((x) => x.id).join(', ')}`,
      {
        details: { fields: [{ path: 'model', message: 'unknown model id' }] },
      },
    );
  }
  return m;
}
