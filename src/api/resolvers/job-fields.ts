/**
 * Field resolvers for Job and JobEvent. Parents are Prisma rows (Job) and event-log records
 * (JobEvent); URLs are presigned per request with the configured TTL, so they expire and carry
 * the unguessable object key, never a guessable id.
 */

import type { JobEventRecord } from '../../events/job-events.ts';
import type { Job } from '../../generated/prisma/client.ts';
import type { ApiContext, ImageGql, JobErrorGql } from '../types.ts';

const ms = (a: Date | null, b: Date | null) => (a && b ? Math.max(0, b.getTime() - a.getTime()) : null);

/** Job.input as shown to clients: an inline base64 image is summarised, not echoed back. */
export function publicParams(input: unknown): unknown {
  if (!input || typeof input !== 'object') return input ?? {};
  const o = input as Record<string, unknown>;
  const image = o.image as Record<string, unknown> | undefined;
  if (image && typeof image.base64 === 'string') {
    return { ...o, image: { base64Bytes: Math.floor((image.base64.length * 3) / 4) } };
  }
  return o;
}

export const jobFieldResolvers = {
  model: (job: Job) => job.modelId,
  params: (job: Job) => publicParams(job.input),
  timings: (job: Job) => {
    const now = new Date();
    return {
      queuedAt: job.queuedAt,
      startedAt: job.startedAt,
      finishedAt: job.finishedAt,
      queueMs: ms(job.queuedAt, job.startedAt ?? (job.status === 'QUEUED' ? now : job.finishedAt)),
      runMs: job.startedAt ? ms(job.startedAt, job.finishedAt ?? now) : null,
      gpuMs: job.gpuMs,
    };
  },
  error: (job: Job): JobErrorGql | null =>
    job.errorCode ? { code: job.errorCode, message: job.errorMessage ?? job.errorCode } : null,
  async images(job: Job, _args: unknown, ctx: ApiContext): Promise<ImageGql[]> {
    const assets = await ctx.db.assets.findMany({
      where: { jobId: job.id, role: 'OUTPUT' },
      orderBy: [{ createdAt: 'asc' }, { key: 'asc' }],
    });
    const ttl = ctx.deps.config.presignTtlSeconds;
    const expiresAt = new Date(Date.now() + ttl * 1000);
    return Promise.all(
      assets.map(async (a) => ({
        id: a.id,
        url: await ctx.deps.blobStore.presignGet(a.key, ttl),
        expiresAt,
        width: a.width,
        height: a.height,
        contentType: a.contentType,
        bytes: a.bytes,
      })),
    );
  },
};

export const jobEventFieldResolvers = {
  status: (e: JobEventRecord) => e.payload.status,
  at: (e: JobEventRecord) => e.createdAt,
  step: (e: JobEventRecord) => e.payload.step ?? null,
  totalSteps: (e: JobEventRecord) => e.payload.totalSteps ?? null,
  stage: (e: JobEventRecord) => e.payload.stage ?? null,
  textDelta: (e: JobEventRecord) => e.payload.textDelta ?? null,
  text: (e: JobEventRecord) => e.payload.text ?? null,
  error: (e: JobEventRecord) => e.payload.error ?? null,
  async previewUrl(e: JobEventRecord, _args: unknown, ctx: ApiContext): Promise<string | null> {
    const id = e.payload.previewAssetId;
    if (!id) return null;
    const asset = await ctx.db.assets.findById(id);
    return asset ? ctx.deps.blobStore.presignGet(asset.key, ctx.deps.config.presignTtlSeconds) : null;
  },
};
