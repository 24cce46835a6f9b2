/**
 * `<file>.sha256` markers: a verified sha256 together with the stat stamp of the file it was
 * computed for (size, mtime, ctime, inode). A later check that finds the same stamp trusts the
 * hash without reading the file, so a worker does not re-hash gigabytes on every start (0.5B:
 * 3+ GB, 40 s to 2 min of CPU per start on a busy 2-core machine).
 *
 * What a matching stamp proves, and what it does not:
 * - Any write through the filesystem changes mtime and ctime; ctime cannot be set back from user
 *   space (utimes itself updates it), so restoring the mtime after an edit is still detected. A
 *   truncation or append changes the size; replacing or copying the file changes the inode.
 * - Not detected: corruption below the filesystem (media errors, raw block writes), and a writer
 *   who can forge the marker, which is no weaker than before: whoever can write the directory
 *   can rewrite manifest.json's hashes too. The hash guards against accidents (truncated
 *   downloads, partial copies, edited files), not against a hostile writer.
 * - A write that lands in the same filesystem clock tick as the file's previous change would
 *   keep its timestamps. hashAndMark therefore records no marker for a file changed within
 *   RACY_NS of the moment hashing started (git's "racily clean" rule); the next check hashes it
 *   again. fetch-weights writes its markers right after downloading, for bytes it hashed as it
 *   wrote them itself.
 */
import { createHash } from 'node:crypto';
import { type BigIntStats, createReadStream } from 'node:fs';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';

/** Coarse kernel timestamps advance in jiffies (4–10 ms); 100 ms leaves room for clock skew. */
const RACY_NS = 100_000_000n;

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

function stampText(st: BigIntStats): string {
  return `size=${st.size} mtime_ns=${st.mtimeNs} ctime_ns=${st.ctimeNs} ino=${st.ino}`;
}

function markerText(sha256: string, st: BigIntStats): string {
  return `${sha256} ${stampText(st)}\n`;
}

/** The sha256 the marker vouches for when the file still has the stamp it was recorded for. */
export async function markedSha256(path: string): Promise<string | undefined> {
  const [st, marker] = await Promise.all([
    stat(path, { bigint: true }).catch(() => undefined),
    readFile(`${path}.sha256`, 'utf8').catch(() => undefined),
  ]);
  if (!st || !marker) return undefined;
  const m = /^([0-9a-f]{64}) (.*)\n$/.exec(marker);
  return m && m[2] === stampText(st) ? m[1] : undefined;
}

/**
 * Records that `path` has `sha256` (as of the stamp `st`, default: now). Best effort: a read-only model directory simply keeps
 * no markers (every check hashes again); false says so. Written via a temporary name, so a
 * concurrent reader never sees half a marker.
 */
export async function writeMarker(path: string, sha256: string, st?: BigIntStats): Promise<boolean> {
  try {
    st ??= await stat(path, { bigint: true });
    const tmp = `${path}.sha256.tmp-${process.pid}`;
    await writeFile(tmp, markerText(sha256, st));
    await rename(tmp, `${path}.sha256`);
    return true;
  } catch {
    return false;
  }
}

export interface HashResult {
  sha256: string;
  /** Whether a marker now vouches for this hash (false: racy, changed while hashed, read-only). */
  marked: boolean;
}

/** Hashes `path` and, when that is safe (see the header), records a marker for the result. */
export async function hashAndMark(path: string): Promise<HashResult> {
  const startedNs = BigInt(Date.now()) * 1_000_000n;
  const before = await stat(path, { bigint: true });
  const sha256 = await sha256File(path);
  const after = await stat(path, { bigint: true });
  const settled = after.ctimeNs + RACY_NS < startedNs && stampText(before) === stampText(after);
  if (!settled) return { sha256, marked: false };
  return { sha256, marked: await writeMarker(path, sha256, after) };
}
