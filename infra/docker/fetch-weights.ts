/**
 * Pulls the exported model from S3 into a local cache before the worker starts (entrypoint.sh).
 *
 * The prefix must hold a `SHA256SUMS` file (`<sha256 hex>  <relative path>` per line, as written
 * by `sha256sum`) next to the model files. Every file is verified against it; a file already in
 * the cache is reused when its `<file>.sha256` marker (src/model/hash-marker.ts) still matches
 * its stat stamp, so a task restarted on the same instance (or a warm-pool instance) starts
 * without downloading or re-hashing gigabytes. The worker's model load reads the same markers,
 * so it does not hash what this step just downloaded. Unverifiable or corrupt weights stop the
 * container instead of running.
 *
 * Env: WEIGHTS_S3_URI (s3://bucket/prefix/), WEIGHTS_CACHE_DIR, MODEL_VARIANT (sub-directory),
 * optional S3_ENDPOINT / S3_REGION / S3_FORCE_PATH_STYLE for S3-compatible servers.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join, normalize, sep } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { hashAndMark, markedSha256, writeMarker } from '../../src/model/hash-marker.ts';

export interface FetchWeightsOptions {
  /** s3://bucket/prefix/ holding SHA256SUMS and the model files. */
  uri: string;
  /** Directory the files land in (cacheDir/<variant>/...). */
  targetDir: string;
  s3: S3Client;
  /** Parallel downloads. */
  concurrency?: number;
}

export interface FetchWeightsResult {
  downloaded: string[];
  cached: string[];
}

interface Entry {
  sha256: string;
  path: string;
}

export async function fetchWeights(options: FetchWeightsOptions): Promise<FetchWeightsResult> {
  const { bucket, prefix } = parseS3Uri(options.uri);
  const sums = await getText(options.s3, bucket, `${prefix}SHA256SUMS`);
  const entries = parseSums(sums);
  await mkdir(options.targetDir, { recursive: true });
  const result: FetchWeightsResult = { downloaded: [], cached: [] };
  const queue = [...entries];
  const worker = async () => {
    for (let e = queue.shift(); e; e = queue.shift()) {
      const target = join(options.targetDir, e.path);
      if (await isCached(target, e.sha256)) {
        result.cached.push(e.path);
        continue;
      }
      await download(options.s3, bucket, `${prefix}${e.path}`, target, e.sha256);
      result.downloaded.push(e.path);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, worker));
  return result;
}

export function parseS3Uri(uri: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!m) throw new Error(`WEIGHTS_S3_URI must look like s3://bucket/prefix/, got ${uri}`);
  const prefix = m[2] === '' || m[2].endsWith('/') ? m[2] : `${m[2]}/`;
  return { bucket: m[1], prefix };
}

export function parseSums(text: string): Entry[] {
  const entries: Entry[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '') continue;
    // sha256sum writes "<hex>  <path>" (two spaces, or " *" in binary mode).
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!m) throw new Error(`SHA256SUMS line ${i + 1} is not "<sha256>  <path>": ${line}`);
    const path = normalize(m[2]);
    // The paths come from a file in S3: never let one escape the cache directory.
    if (path.startsWith('..') || path.startsWith(sep) || path.includes(`${sep}..${sep}`)) {
      throw new Error(`SHA256SUMS line ${i + 1}: path ${m[2]} leaves the model directory`);
    }
    entries.push({ sha256: m[1], path });
  }
  if (entries.length === 0) throw new Error('SHA256SUMS lists no files');
  return entries;
}

async function isCached(target: string, sha256: string): Promise<boolean> {
  if ((await markedSha256(target)) === sha256) return true;
  // No or stale marker (copied in by hand?): hash once; a match records a marker for next time.
  return (await hashAndMark(target).catch(() => undefined))?.sha256 === sha256;
}

async function download(
  s3: S3Client,
  bucket: string,
  key: string,
  target: string,
  sha256: string,
): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  const tmp = `${target}.part-${process.pid}`;
  const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  if (!out.Body) throw new Error(`s3://${bucket}/${key} has no body`);
  const hash = createHash('sha256');
  const tee = new Transform({
    transform(chunk, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(out.Body as NodeJS.ReadableStream, tee, createWriteStream(tmp));
    const actual = hash.digest('hex');
    if (actual !== sha256) {
      throw new Error(`checksum mismatch for s3://${bucket}/${key}: expected ${sha256}, got ${actual}`);
    }
    // Atomic: a crash mid-download never leaves a truncated file under the real name.
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  // The bytes were hashed as they were written, so the marker is recorded at once.
  await writeMarker(target, sha256);
}

async function getText(s3: S3Client, bucket: string, key: string): Promise<string> {
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return (await out.Body?.transformToString('utf8')) ?? '';
  } catch (cause) {
    throw new Error(`cannot read s3://${bucket}/${key}: the model export must include SHA256SUMS`, { cause });
  }
}

async function main(): Promise<void> {
  const env = process.env;
  const uri = env.WEIGHTS_S3_URI;
  if (!uri) throw new Error('WEIGHTS_S3_URI is not set');
  const targetDir = join(env.WEIGHTS_CACHE_DIR ?? '/cache/models', env.MODEL_VARIANT ?? 'model');
  const s3 = new S3Client({
    region: env.S3_REGION ?? env.AWS_REGION ?? 'us-east-1',
    endpoint: env.S3_ENDPOINT || undefined,
    forcePathStyle: env.S3_FORCE_PATH_STYLE === 'true',
  });
  const started = Date.now();
  const r = await fetchWeights({ uri, targetDir, s3 });
  process.stdout.write(
    `${JSON.stringify({ msg: 'weights ready', targetDir, downloaded: r.downloaded.length, cached: r.cached.length, ms: Date.now() - started })}\n`,
  );
  s3.destroy();
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split(sep).join('/'))) {
  main().catch((e: unknown) => {
    process.stderr.write(`fetch-weights: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
