/**
 * Subscriptions: ownership is checked before anything streams (NOT_FOUND for other tenants'
 * jobs, like queries), then the event bus replays the durable log after `afterSeq` and continues
 * live; the bus ends the stream after the terminal event.
 */
import type { JobEventRecord } from '../../events/job-events.ts';
import { AppError } from '../../shared/errors.ts';
import type { ApiContext } from '../types.ts';
import { requireScope } from '../use-auth.ts';
import { ownJob } from './query.ts';

const identity = (e: JobEventRecord) => e;

export const subscriptionResolvers = {
  jobEvents: {
    async subscribe(
      _: unknown,
      args: { jobId: string; afterSeq?: number | null },
      ctx: ApiContext,
    ): Promise<AsyncIterable<JobEventRecord>> {
      requireScope(ctx, 'jobs:read');
      const afterSeq = args.afterSeq ?? 0;
      if (!Number.isInteger(afterSeq) || afterSeq < 0) {
        throw new AppError(
          'BAD_USER_INPUT',
          'afterSeq must be a non-negative integer (the last seq you received)',
          { details: { fields: [{ path: 'afterSeq', message: 'must be >= 0' }] } },
        );
      }
      await ownJob(ctx, args.jobId);
      return ctx.deps.events.subscribeJob(ctx.tenantId, args.jobId, afterSeq);
    },
    resolve: identity,
  },
  jobs: {
    subscribe(_: unknown, _args: unknown, ctx: ApiContext): AsyncIterable<JobEventRecord> {
      requireScope(ctx, 'jobs:read');
      return ctx.deps.events.subscribeTenant(ctx.tenantId);
    },
    resolve: identity,
  },
};
