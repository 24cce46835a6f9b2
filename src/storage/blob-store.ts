/**
 * Object storage over the S3 protocol (AWS S3 in production, s3rver when embedded and in tests).
 * Every key lives under `tenants/<tenantId>/`, built by `tenantKey`, so one tenant's presigned
 * URL can never name another tenant's object by accident.
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { S3Config } from '../config/config.ts';
import { AppError } from '../shared/errors.ts';

/** Bodies at or above this size go through multipart upload. */
export const MULTIPART_THRESHOLD = 8 * 1024 * 1024;
const PART_SIZE = 5 * 1024 * 1024; // S3's minimum part size

export type BlobBody = Uint8Array | string | Readable;
export type BlobHead = { bytes: number; contentType?: string; etag?: string };
export type BlobStore = ReturnType<typeof createBlobStore>;

const SAFE_SEGMENT = /^[A-Za-z0-9._-]+$/;

/**
 * `tenants/<tenantId>/<kind>/<random>[/<name>]`. The random part (128 bits) keeps keys
 * unguessable; `name` (optional, a file name like `image.png`) must be one safe segment.
 */
export function tenantKey(tenantId: string, kind: string, name?: string): string {
  for (const [label, v] of [
    ['tenantId', tenantId],
    ['kind', kind],
    ...(name ? [['name', name]] : []),
  ] as const) {
    if (!SAFE_SEGMENT.test(v) || v === '.' || v === '..') {
      throw new AppError(
        'BAD_USER_INPUT',
        `${label} "${v}" may only contain letters, digits, '.', '_' and '-'`,
      );
    }
  }
  const rand = randomBytes(16).toString('hex');
  return `tenants/${tenantId}/${kind}/${rand}${name ? `/${name}` : ''}`;
}

/** True when `key` belongs to `tenantId` (used before presigning or serving a client-given key). */
export function isTenantKey(tenantId: string, key: string): boolean {
  return key.startsWith(`tenants/${tenantId}/`) && !key.split('/').includes('..');
}

export function createBlobStore(cfg: S3Config) {
  const client = new S3Client({
    region: cfg.region,
    endpoint: cfg.endpoint,
    forcePathStyle: cfg.forcePathStyle,
    ...(cfg.accessKeyId
      ? { credentials: { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey } }
      : {}),
    // The SDK's default CRC32 trailer corrupts streamed bodies on s3rver (stored as aws-chunked
    // text); only send/verify checksums where the operation demands them.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const Bucket = cfg.bucket;

  const wrap = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (cause) {
      if (cause instanceof AppError) throw cause;
      throw new AppError(
        'STORAGE_ERROR',
        `${what} failed: ${(cause as Error)?.name ?? 'Error'} ${(cause as Error)?.message ?? ''}`.trim(),
        { cause },
      );
    }
  };

  return {
    bucket: Bucket,
    client,

    async ensureBucket(): Promise<void> {
      await wrap(`creating bucket ${Bucket}`, async () => {
        try {
          await client.send(new HeadBucketCommand({ Bucket }));
        } catch {
          await client.send(new CreateBucketCommand({ Bucket }));
        }
      });
    },

    /** Cheap reachability check for /healthz. */
    async ping(): Promise<void> {
      await wrap('bucket check', () => client.send(new HeadBucketCommand({ Bucket })));
    },

    async put(
      key: string,
      body: BlobBody,
      opts: { contentType?: string; bytes?: number } = {},
    ): Promise<void> {
      const size =
        typeof body === 'string'
          ? Buffer.byteLength(body)
          : body instanceof Uint8Array
            ? body.byteLength
            : opts.bytes;
      await wrap(`put ${key}`, async () => {
        // Streams of unknown length and large buffers go multipart: PutObject needs a known
        // length and caps at 5 GiB.
        if (size === undefined || size >= MULTIPART_THRESHOLD) {
          const up = new Upload({
            client,
            params: { Bucket, Key: key, Body: body, ContentType: opts.contentType },
            partSize: PART_SIZE,
            queueSize: 2,
          });
          await up.done();
        } else {
          await client.send(
            new PutObjectCommand({
              Bucket,
              Key: key,
              Body: body,
              ContentType: opts.contentType,
              ContentLength: size,
            }),
          );
        }
      });
    },

    async get(key: string): Promise<Buffer> {
      return wrap(`get ${key}`, async () => {
        try {
          const r = await client.send(new GetObjectCommand({ Bucket, Key: key }));
          return Buffer.from(
            await (r.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
          );
        } catch (e) {
          throw notFoundOr(e, key);
        }
      });
    },

    async getStream(key: string): Promise<Readable> {
      return wrap(`get ${key}`, async () => {
        try {
          const r = await client.send(new GetObjectCommand({ Bucket, Key: key }));
          return r.Body as Readable;
        } catch (e) {
          throw notFoundOr(e, key);
        }
      });
    },

    /** Null when the object does not exist. */
    async head(key: string): Promise<BlobHead | null> {
      return wrap(`head ${key}`, async () => {
        try {
          const r = await client.send(new HeadObjectCommand({ Bucket, Key: key }));
          return { bytes: r.ContentLength ?? 0, contentType: r.ContentType, etag: r.ETag };
        } catch (e) {
          if (isNotFound(e)) return null;
          throw e;
        }
      });
    },

    async delete(key: string): Promise<void> {
      await wrap(`delete ${key}`, () => client.send(new DeleteObjectCommand({ Bucket, Key: key })));
    },

    async presignGet(key: string, expiresInSeconds: number): Promise<string> {
      return wrap(`presign get ${key}`, () =>
        getSignedUrl(client, new GetObjectCommand({ Bucket, Key: key }), { expiresIn: expiresInSeconds }),
      );
    },

    /**
     * A PUT URL for exactly `bytes` bytes of `contentType`: both headers are signed, so S3 refuses
     * an upload of another size or type (a client cannot store more than it declared). The
     * presigner leaves Content-Type unsigned unless asked, hence signableHeaders.
     */
    async presignPut(
      key: string,
      expiresInSeconds: number,
      contentType: string,
      bytes: number,
    ): Promise<string> {
      return wrap(`presign put ${key}`, () =>
        getSignedUrl(
          client,
          new PutObjectCommand({ Bucket, Key: key, ContentType: contentType, ContentLength: bytes }),
          { expiresIn: expiresInSeconds, signableHeaders: new Set(['content-type', 'content-length']) },
        ),
      );
    },

    close(): void {
      client.destroy();
    },
  };
}

function isNotFound(e: unknown): boolean {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err?.name === 'NotFound' || err?.name === 'NoSuchKey' || err?.$metadata?.httpStatusCode === 404;
}

function notFoundOr(e: unknown, key: string): unknown {
  return isNotFound(e) ? new AppError('NOT_FOUND', `object ${key} does not exist`, { cause: e }) : e;
}
