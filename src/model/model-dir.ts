/**
 * Opens a model directory: reads and validates manifest.json and (optionally) checks every file's
 * size and sha256, so a truncated download or a swapped graph is refused at load with the file's
 * name, not discovered as garbage images later. Verified hashes are remembered per file
 * (hash-marker.ts), so a restart only stats what an earlier load already read.
 */
import { readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AppError } from '../shared/errors.ts';
import { hashAndMark, markedSha256 } from './hash-marker.ts';
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

/** How one listed file was checked at load. */
export interface FileCheck {
  file: string;
  bytes: number;
  /** `marker`: its recorded hash still applies (no read); `hashed`: read in full; `size`: size only. */
  how: 'marker' | 'hashed' | 'size';
  ms: number;
}

/**
 * Checks presence and size of every listed file; with `hashes`, also the sha256. A file whose
 * `.sha256` marker (hash-marker.ts) still matches its stat stamp is not read again, so only the
 * first load after a download, copy or edit pays for hashing gigabytes.
 */
export async function verifyModelDir(
  dir: string,
  manifest: Manifest,
  opts: { hashes: boolean },
): Promise<FileCheck[]> {
  const problems: string[] = [];
  const checks: FileCheck[] = [];
  const seen = new Set<string>();
  for (const name of GRAPH_NAMES) {
    const entry = manifest.graphs[name];
    for (const ref of entry.data ? [entry, entry.data] : [entry]) {
      if (seen.has(ref.file)) continue; // a file several graphs share is checked once
      seen.add(ref.file);
      const t0 = performance.now();
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
      let how: FileCheck['how'] = 'size';
      if (opts.hashes) {
        how = 'marker';
        if ((await markedSha256(path)) !== ref.sha256) {
          how = 'hashed';
          if ((await hashAndMark(path)).sha256 !== ref.sha256)
            problems.push(`${ref.file} (graph ${name}) is corrupted: sha256 mismatch`);
        }
      }
      checks.push({ file: ref.file, bytes: st.size, how, ms: performance.now() - t0 });
    }
  }
  if (problems.length) {
    throw new AppError('MODEL_INVALID', `model directory ${dir} is not usable: ${problems.join('; ')}`, {
      details: { problems },
    });
  }
  return checks;
}
