/** What a job handler gets: the claimed job, storage, and the progress sink it reports through. */
import { createHash, randomUUID } from 'node:crypto';
import type { AssetRole, Job } from '../../generated/prisma/client.ts';
import type { EventSink } from '../../harmon/events.ts';
import type { Logger } from '../../shared/logger.ts';
import { type BlobStore, tenantKey } from '../../storage/blob-store.ts';
import type { Prisma } from '../../storage/db.ts';
import type { ImageSourceDeps } from '../image-source.ts';
import { recordPending } from '../pending-uploads.ts';
import type { JobRunner } from '../runner.ts';

export interface HandlerContext {
  prisma: Prisma;
  blobStore: BlobStore;
  runner: JobRunner;
  job: Job;
  log: Logger;
  signal: AbortSignal;
  onEvent: EventSink;
  images: Omit<ImageSourceDeps, 'prisma' | 'blobStore'>;
}

/** An Asset row to insert once the job's final transaction runs (the object is already in S3). */
export interface AssetDraft {
  id: string;
  key: string;
  contentType: string;
  bytes: number;
  width: number | null;
  height: number | null;
  sha256: string;
  role: AssetRole;
}

export interface JobOutcome {
  assets: AssetDraft[];
  text?: string;
  usage: { images: number; tokens: number; gpuMs: number };
  /** Milliseconds per pipeline stage (engine RunMetadata.stageMs), stored for /metrics. */
  stageMs?: Record<string, number>;
}

/**
 * Uploads a PNG under the tenant's prefix and returns its Asset draft (id chosen here). The key
 * is recorded as pending on the job first (pending-uploads.ts); whoever writes the Asset row
 * must settle it in the same transaction.
 */
export async function uploadPng(
  store: { prisma: Prisma; blobStore: BlobStore; job: Pick<Job, 'id' | 'tenantId'> },
  kind: 'outputs' | 'previews',
  name: string,
  image: { data: Uint8Array; width: number; height: number },
  role: AssetRole,
): Promise<AssetDraft> {
  const key = tenantKey(store.job.tenantId, kind, name);
  await recordPending(store.prisma, store.job.id, [key]);
  await store.blobStore.put(key, image.data, { contentType: 'image/png' });
  return {
    id: randomUUID(),
    key,
    contentType: 'image/png',
    bytes: image.data.byteLength,
    width: image.width,
    height: image.height,
    sha256: createHash('sha256').update(image.data).digest('hex'),
    role,
  };
}
