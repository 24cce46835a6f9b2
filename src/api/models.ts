/**
 * The models a deployment serves (HARMON_MODEL, comma-separated model directories), read from each
 * directory's manifest.json without loading any weights: the API never touches the runtime. With
 * no directory configured the worker builds the random-weight tiny demo model, listed here as such.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { AppError } from '../shared/errors.ts';

export type ModelInfo = { id: string; dir?: string; demo: boolean; maxImageSize?: number };

/**
 * Id of the model a worker serves when nothing is configured: the manifest id of the pipeline's
 * random-weight demo model (src/onnx/tiny.ts, seed 0). `harmon serve` passes the built demo
 * directory instead, so this literal only matters for an API running without a local model.
 */
export const DEMO_MODEL_ID = 'harmon-tiny-demo-seed0';
const TINY_MAX_IMAGE_SIZE = 256;

type ManifestLike = { modelId?: unknown; demo?: unknown; config?: { maxImageSize?: unknown } };

export function listModels(modelDirs: string[]): ModelInfo[] {
  if (modelDirs.length === 0) return [{ id: DEMO_MODEL_ID, demo: true, maxImageSize: TINY_MAX_IMAGE_SIZE }];
  return modelDirs.map((dir) => {
    const path = join(dir, 'manifest.json');
    let m: ManifestLike = {};
    if (existsSync(path)) {
      try {
        m = JSON.parse(readFileSync(path, 'utf8')) as ManifestLike;
      } catch (cause) {
        throw new AppError('MODEL_INVALID', `${path} is not valid JSON`, { cause });
      }
    }
    return {
      // The manifest's id is what the worker's engines answer to; the folder name is a fallback.
      id: typeof m.modelId === 'string' && m.modelId ? m.modelId : basename(dir.replace(/\/+$/, '')) || dir,
      dir,
      demo: m.demo === true,
      maxImageSize: typeof m.config?.maxImageSize === 'number' ? m.config.maxImageSize : undefined,
    };
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
