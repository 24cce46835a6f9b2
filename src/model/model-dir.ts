/**
 * Opens a model directory: reads and validates manifest.json and (optionally) checks every file's
 * size and sha256, so a truncated download or a swapped graph is refused at load with the file's
 * name, not discovered as garbage images later.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AppError } from '../shared/errors.ts';
import { GRAPH_NAMES, MANIFEST_FORMAT, MANIFEST_VERSION, type Manifest, manifestSchema } from './manifest.ts';

export async function readManifest(dir: string): Promise<Manifest> {
  let raw: string;
  try {
    raw = await readFile(join(dir, 'manifest.json'), 'utf8');
  } catch (e) {
    throw new AppError('MODEL_INVALID', `no manifest.json in model directory ${dir}`, { cause: e });
  }
  return parseManifest(raw, dir);
}

/** readManifest for callers that cannot await (the API's model list, built once at mount). */
export function readManifestSync(dir: string): Manifest {
  let raw: string;
  try {
    raw = readFileSync(join(dir, 'manifest.json'), 'utf8');
  } catch (e) {
    throw new AppError('MODEL_INVALID', `no manifest.json in model directory ${dir}`, { cause: e });
  }
  return parseManifest(raw, dir);
}

function parseManifest(raw: string, dir: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (e) {
    throw new AppError('MODEL_INVALID', `manifest.json in ${dir} is not valid JSON`, { cause: e });
  }
  const version = (json as { format?: unknown; formatVersion?: unknown } | null) ?? {};
  // A directory of another format version is refused whole (not field by field): say what to do.
  if (
    version.format === MANIFEST_FORMAT &&
    typeof version.formatVersion === 'number' &&
    version.formatVersion !== MANIFEST_VERSION
  ) {
    throw new AppError(
      'MODEL_INVALID',
      `model directory ${dir} is in model format version ${String(version.formatVersion)}; this version of ` +
        `harmon reads version ${MANIFEST_VERSION} only (each weight stored once). Re-export it: ` +
        'harmon convert for a checkpoint, harmon tiny / harmon random for random weights.',
      { details: { formatVersion: version.formatVersion, expected: MANIFEST_VERSION } },
    );
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => i.path.join('.') || '(root)').join(', ');
    throw new AppError('MODEL_INVALID', `manifest.json in ${dir} is invalid at: ${fields}`, {
      details: { issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
    });
  }
  return parsed.data;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Checks presence and size of every listed file; with `hashes`, also the sha256 (slow for GB files). */
export async function verifyModelDir(
  dir: string,
  manifest: Manifest,
  opts: { hashes: boolean },
): Promise<void> {
  const problems: string[] = [];
  for (const name of GRAPH_NAMES) {
    const entry = manifest.graphs[name];
    for (const ref of entry.data ? [entry, entry.data] : [entry]) {
      const path = join(dir, ref.file);
      const st = await stat(path).catch(() => null);
      if (!st) {
        problems.push(`${ref.file} (graph ${name}) is missing`);
        continue;
      }
      if (st.size !== ref.bytes) {
        problems.push(`${ref.file} (graph ${name}) has ${st.size} bytes, manifest says ${ref.bytes}`);
        continue;
      }
      if (opts.hashes && (await sha256File(path)) !== ref.sha256) {
        problems.push(`${ref.file} (graph ${name}) is corrupted: sha256 mismatch`);
      }
    }
  }
  if (problems.length) {
    throw new AppError('MODEL_INVALID', `model directory ${dir} is not usable: ${problems.join('; ')}`, {
      details: { problems },
    });
  }
}
