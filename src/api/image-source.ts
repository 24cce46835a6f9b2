/**
 * Checks a describe request's image source before any job exists, so a bad source is a coded
 * client error with nothing written:
 * - uploadId: the caller's own, unexpired Upload whose object exists, fits its declared size and
 *   starts like an accepted image (shared/images.ts; the worker decodes it fully);
 * - imageUrl: https only, and every address the hostname resolves to must be public — checked
 *   here, before the worker ever connects (the worker re-checks and pins the address);
 * - imageBase64: well-formed, small, and image magic bytes.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { classifyAddress, isForbiddenHostname } from '../jobs/ssrf.ts';
import { AppError } from '../shared/errors.ts';
import { ACCEPTED_FORMATS_TEXT, sniffImageFormat } from '../shared/images.ts';
import type { BlobStore } from '../storage/blob-store.ts';
import type { TenantScope } from '../storage/tenant-scope.ts';
import { type DescribeImageRef, decodeInlineImage, imageSourceOf } from './inputs.ts';
import type { DescribeInputGql } from './types.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (s: string) => UUID.test(s);

const bad = (path: string, message: string, sentence: string) =>
  new AppError('BAD_USER_INPUT', sentence, { details: { fields: [{ path, message }] } });

export type ImageCheckDeps = {
  db: TenantScope;
  blobStore: BlobStore;
  maxUploadBytes: number;
  lookup?: (host: string) => Promise<string[]>;
  now?: Date;
};

const defaultLookup = async (host: string) =>
  (await dnsLookup(host, { all: true, verbatim: true })).map((a) => a.address);

/** Refuses URLs that are not https or whose host resolves to any non-public address. */
export async function assertPublicImageUrl(raw: string, lookup = defaultLookup): Promise<URL> {
  if (raw.length > 2048 || !URL.canParse(raw))
    throw bad('imageUrl', 'not a URL', 'imageUrl is not a valid URL');
  const url = new URL(raw);
  if (url.protocol !== 'https:') throw bad('imageUrl', 'must be https', 'imageUrl must use https://');
  if (url.username || url.password)
    throw bad('imageUrl', 'no credentials', 'imageUrl must not contain credentials');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  // Names that always mean this machine are refused without asking DNS.
  if (isForbiddenHostname(host))
    throw bad(
      'imageUrl',
      'local host name',
      `imageUrl host ${host} names this machine or its network; use a public address`,
    );
  let addresses: string[];
  if (isIP(host)) addresses = [host];
  else {
    try {
      addresses = await lookup(host);
    } catch {
      throw bad('imageUrl', 'host does not resolve', `imageUrl host ${host} does not resolve`);
    }
  }
  if (addresses.length === 0)
    throw bad('imageUrl', 'host does not resolve', `imageUrl host ${host} has no address`);
  for (const a of addresses) {
    const v = classifyAddress(a);
    if (!v.allowed)
      throw bad(
        'imageUrl',
        'non-public address',
        `imageUrl resolves to ${a} (${v.reason}); only public addresses are fetched`,
      );
  }
  return url;
}

/** Validates the describe image source and returns what the job stores under `input.image`. */
export async function checkImageSource(
  input: DescribeInputGql,
  deps: ImageCheckDeps,
): Promise<DescribeImageRef> {
  const src = imageSourceOf(input);
  if (src.kind === 'base64') {
    const bytes = decodeInlineImage(src.data);
    if (!sniffImageFormat(bytes))
      throw bad('imageBase64', 'not an image', `imageBase64 is not a ${ACCEPTED_FORMATS_TEXT} image`);
    return { base64: bytes.toString('base64') };
  }
  if (src.kind === 'url') {
    const url = await assertPublicImageUrl(src.url, deps.lookup ?? defaultLookup);
    return { url: url.toString() };
  }
  const notFound = new AppError('NOT_FOUND', `upload ${src.uploadId} was not found`, {
    details: { fields: [{ path: 'uploadId', message: 'not found' }] },
  });
  if (!isUuid(src.uploadId)) throw notFound;
  const upload = await deps.db.uploads.findById(src.uploadId);
  if (!upload) throw notFound;
  if (upload.expiresAt < (deps.now ?? new Date()))
    throw bad(
      'uploadId',
      'expired',
      `upload ${upload.id} expired at ${upload.expiresAt.toISOString()}; create a new one`,
    );
  const head = await deps.blobStore.head(upload.key);
  if (!head)
    throw bad(
      'uploadId',
      'nothing uploaded',
      `upload ${upload.id} has no content yet; PUT the image to its uploadUrl first`,
    );
  const limit = Math.min(upload.bytes, deps.maxUploadBytes);
  if (head.bytes > limit)
    throw bad(
      'uploadId',
      `over ${limit} bytes`,
      `the uploaded image has ${head.bytes} bytes, more than the ${limit} allowed`,
    );
  const body = await deps.blobStore.get(upload.key);
  if (!sniffImageFormat(body))
    throw bad('uploadId', 'not an image', `the uploaded object is not a ${ACCEPTED_FORMATS_TEXT} image`);
  return { uploadId: upload.id };
}
