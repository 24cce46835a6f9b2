/**
 * Loads a describe job's input image from wherever the client pointed: an Upload of the same
 * tenant (object in S3), an https URL (SSRF-checked, pinned, bounded), or small inline base64.
 * Every failure here is the client's input (BAD_USER_INPUT / NOT_FOUND): the job fails at once,
 * no retry. The bytes are sniffed and decoded later by the pipeline (image-io.ts).
 */
import { AppError } from '../shared/errors.ts';
import { decodeImageBase64 } from '../shared/images.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import { isTenantKey } from '../storage/blob-store.ts';
import type { Prisma } from '../storage/db.ts';
import { forTenant } from '../storage/tenant-scope.ts';
import type { ImageSource } from './runner.ts';
import { type FetchPolicy, safeFetch } from './safe-fetch.ts';

export interface ImageSourceDeps {
  prisma: Prisma;
  blobStore: BlobStore;
  fetchPolicy?: FetchPolicy;
  /** Largest image accepted from any source. */
  maxBytes: number;
  /** Time limit for URL fetches. */
  fetchTimeoutMs?: number;
}

export async function loadImage(
  deps: ImageSourceDeps,
  tenantId: string,
  source: ImageSource | undefined,
): Promise<Uint8Array> {
  if (!source || typeof source !== 'object') {
    throw new AppError('BAD_USER_INPUT', 'describe needs an image: uploadId, url or base64.');
  }
  if ('uploadId' in source) return fromUpload(deps, tenantId, source.uploadId);
  if ('url' in source) {
    const res = await safeFetch(source.url, {
      ...deps.fetchPolicy,
      what: 'image URL',
      maxBytes: deps.maxBytes,
      timeoutMs: deps.fetchTimeoutMs ?? 15_000,
      maxRedirects: 3,
    });
    if (res.status < 200 || res.status >= 300) {
      throw new AppError(
        'BAD_USER_INPUT',
        `Fetching the image URL returned HTTP ${res.status}; give a URL that serves the image.`,
      );
    }
    return res.body;
  }
  if ('base64' in source) return decodeImageBase64(source.base64, deps.maxBytes, 'image base64');
  throw new AppError('BAD_USER_INPUT', 'describe needs an image: uploadId, url or base64.');
}

async function fromUpload(deps: ImageSourceDeps, tenantId: string, uploadId: string): Promise<Uint8Array> {
  const upload = /^[0-9a-f-]{36}$/i.test(uploadId)
    ? await forTenant(deps.prisma, tenantId).uploads.findById(uploadId)
    : null;
  // Another tenant's upload reads exactly like a missing one.
  if (!upload || !isTenantKey(tenantId, upload.key))
    throw new AppError('NOT_FOUND', `upload ${uploadId} was not found`);
  const head = await deps.blobStore.head(upload.key);
  if (!head)
    throw new AppError(
      'BAD_USER_INPUT',
      `upload ${uploadId} has no data yet; PUT the image to its URL first.`,
    );
  const limit = Math.min(deps.maxBytes, upload.bytes);
  if (head.bytes > limit) {
    throw new AppError(
      'BAD_USER_INPUT',
      `upload ${uploadId} is ${head.bytes} bytes, more than the limit of ${limit}.`,
    );
  }
  const bytes = await deps.blobStore.get(upload.key);
  await forTenant(deps.prisma, tenantId).uploads.update(uploadId, { consumedAt: new Date() });
  return bytes;
}
