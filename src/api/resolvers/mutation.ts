/**
 * Mutation resolvers. Order matters: validate everything (input, model, image source) first, so a
 * bad request writes nothing; only then create rows (enqueueJob: quota check + Job + first event
 * in one transaction under a per-tenant lock; the pg-boss message joins that transaction, an SQS
 * message follows the commit).
 */
import type { Job } from '../../generated/prisma/client.ts';
import { enqueueJob, requestCancel } from '../../jobs/enqueue.ts';
import { AppError } from '../../shared/errors.ts';
import { ACCEPTED_CONTENT_TYPES } from '../../shared/images.ts';
import { checkIdempotencyKey } from '../../shared/job-inputs.ts';
import { tenantKey } from '../../storage/blob-store.ts';
import { imagesOf } from '../../tenancy/quota.ts';
import { checkImageSource, isUuid } from '../image-source.ts';
import { checkWebhookUrl, toDescribeOptions, toGenerateInput } from '../inputs.ts';
import { pickModel } from '../models.ts';
import type { ApiContext, DescribeInputGql, GenerateInputGql, UploadGql } from '../types.ts';
import { requireScope } from '../use-auth.ts';
import { ownJob } from './query.ts';

export const mutationResolvers = {
  async generate(_: unknown, { input }: { input: GenerateInputGql }, ctx: ApiContext): Promise<Job> {
    requireScope(ctx, 'jobs:write');
    const model = pickModel(ctx.deps.models, input.model);
    const jobInput = toGenerateInput(input, model);
    const webhookUrl = checkWebhookUrl(input.webhookUrl);
    const idempotencyKey = checkIdempotencyKey(input.idempotencyKey);
    // The quota is checked by enqueueJob in the insert transaction (a replay of a known key skips
    // it and returns the existing job or CONFLICT).
    const job = await enqueueJob(
      { prisma: ctx.deps.prisma, queue: ctx.deps.queue },
      {
        tenantId: ctx.tenantId,
        kind: 'GENERATE',
        input: jobInput,
        idempotencyKey,
        webhookUrl,
        modelId: model.id,
        quotaImages: imagesOf('GENERATE', jobInput),
      },
    );
    ctx.log.info({ jobId: job.id, kind: 'GENERATE' }, 'job enqueued');
    return job;
  },

  async describe(_: unknown, { input }: { input: DescribeInputGql }, ctx: ApiContext): Promise<Job> {
    requireScope(ctx, 'jobs:write');
    const model = pickModel(ctx.deps.models, input.model);
    const options = toDescribeOptions(input);
    const webhookUrl = checkWebhookUrl(input.webhookUrl);
    const idempotencyKey = checkIdempotencyKey(input.idempotencyKey);
    const image = await checkImageSource(input, {
      db: ctx.db,
      blobStore: ctx.deps.blobStore,
      maxUploadBytes: ctx.deps.config.maxUploadBytes,
      lookup: ctx.deps.lookup,
    });
    const job = await enqueueJob(
      { prisma: ctx.deps.prisma, queue: ctx.deps.queue },
      {
        tenantId: ctx.tenantId,
        kind: 'DESCRIBE',
        input: { ...options, image },
        idempotencyKey,
        webhookUrl,
        modelId: model.id,
      },
    );
    ctx.log.info({ jobId: job.id, kind: 'DESCRIBE' }, 'job enqueued');
    return job;
  },

  async createUpload(
    _: unknown,
    args: { contentType: string; bytes: number },
    ctx: ApiContext,
  ): Promise<UploadGql> {
    requireScope(ctx, 'jobs:write');
    const contentType = args.contentType.trim().toLowerCase();
    if (!ACCEPTED_CONTENT_TYPES.includes(contentType)) {
      throw new AppError(
        'BAD_USER_INPUT',
        `contentType must be one of ${ACCEPTED_CONTENT_TYPES.join(', ')}`,
        {
          details: { fields: [{ path: 'contentType', message: 'unsupported content type' }] },
        },
      );
    }
    const max = ctx.deps.config.maxUploadBytes;
    if (!Number.isInteger(args.bytes) || args.bytes < 1 || args.bytes > max) {
      throw new AppError('BAD_USER_INPUT', `bytes must be 1..${max}`, {
        details: { fields: [{ path: 'bytes', message: `must be 1..${max}` }] },
      });
    }
    const ttl = ctx.deps.config.presignTtlSeconds;
    const key = tenantKey(ctx.tenantId, 'uploads');
    const expiresAt = new Date(Date.now() + ttl * 1000);
    const uploadUrl = await ctx.deps.blobStore.presignPut(key, ttl, contentType, args.bytes);
    const row = await ctx.db.uploads.create({ key, contentType, bytes: args.bytes, expiresAt });
    return { id: row.id, uploadUrl, contentType, maxBytes: args.bytes, expiresAt };
  },

  async cancelJob(_: unknown, args: { id: string }, ctx: ApiContext): Promise<Job> {
    requireScope(ctx, 'jobs:write');
    if (!isUuid(args.id)) throw new AppError('NOT_FOUND', `job ${args.id} was not found`);
    await ownJob(ctx, args.id);
    return requestCancel(ctx.deps.prisma, ctx.tenantId, args.id);
  },
};
