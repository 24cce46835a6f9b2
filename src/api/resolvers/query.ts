/** Query resolvers: every read goes through `ctx.db` (tenant-scoped). */
import type { Job, Prisma as P } from '../../generated/prisma/client.ts';
import { AppError } from '../../shared/errors.ts';
import { unstorableDate } from '../../shared/storable.ts';
import { quotaUsage } from '../../tenancy/quota.ts';
import { isUuid } from '../image-source.ts';
import type { ApiContext, JobsArgs } from '../types.ts';
import { requireScope } from '../use-auth.ts';
import { MAX_PAGE_SIZE } from '../use-limits.ts';

const badCursor = () =>
  new AppError('BAD_USER_INPUT', '`after` is not a cursor returned by this API', {
    details: { fields: [{ path: 'after', message: 'invalid cursor' }] },
  });

export function encodeCursor(job: Pick<Job, 'createdAt' | 'id'>): string {
  return Buffer.from(`${job.createdAt.toISOString()}|${job.id}`).toString('base64url');
}

export function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  const [iso, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(iso ?? '');
  if (!id || !isUuid(id) || unstorableDate(createdAt)) throw badCursor();
  return { createdAt, id };
}

/** The caller's job or NOT_FOUND (also for malformed ids and other tenants' jobs). */
export async function ownJob(ctx: ApiContext, id: string): Promise<Job> {
  const job = isUuid(id) ? await ctx.db.jobs.findById(id) : null;
  if (!job) throw new AppError('NOT_FOUND', `job ${id} was not found`);
  return job;
}

export const queryResolvers = {
  job(_: unknown, args: { id: string }, ctx: ApiContext) {
    requireScope(ctx, 'jobs:read');
    return ownJob(ctx, args.id);
  },

  async jobs(_: unknown, args: JobsArgs, ctx: ApiContext) {
    requireScope(ctx, 'jobs:read');
    const first = args.first ?? 20;
    if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE_SIZE) {
      throw new AppError('BAD_USER_INPUT', `first must be 1..${MAX_PAGE_SIZE}`, {
        details: { fields: [{ path: 'first', message: `must be 1..${MAX_PAGE_SIZE}` }] },
      });
    }
    const and: P.JobWhereInput[] = [];
    const f = args.filter ?? {};
    if (f.kind) and.push({ kind: f.kind });
    if (f.status) and.push({ status: f.status });
    if (f.createdAfter) and.push({ createdAt: { gt: f.createdAfter } });
    if (args.after) {
      const c = decodeCursor(args.after);
      // Newest first with the id as tie-breaker: rows strictly "after" the cursor in that order.
      and.push({ OR: [{ createdAt: { lt: c.createdAt } }, { createdAt: c.createdAt, id: { lt: c.id } }] });
    }
    const rows = await ctx.db.jobs.findMany({
      where: { AND: and },
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: first + 1,
    });
    const page = rows.slice(0, first);
    const edges = page.map((node) => ({ cursor: encodeCursor(node), node }));
    return { edges, pageInfo: { hasNextPage: rows.length > first, endCursor: edges.at(-1)?.cursor ?? null } };
  },

  async viewer(_: unknown, _args: unknown, ctx: ApiContext) {
    requireScope(ctx, 'jobs:read');
    const tenant = await ctx.deps.prisma.tenant.findUniqueOrThrow({ where: { id: ctx.tenantId } });
    const u = await quotaUsage(ctx.deps.prisma, ctx.tenantId);
    return {
      tenant: { id: tenant.id, name: tenant.name },
      limits: {
        ratePerMinute: tenant.ratePerMinute,
        maxConcurrentJobs: tenant.maxConcurrentJobs,
        monthlyImageQuota: tenant.monthlyImageQuota,
      },
      usage: {
        periodStart: u.periodStart,
        images: u.images,
        tokens: u.tokens,
        gpuMs: u.gpuMs,
        inFlightImages: u.inFlightImages,
        remainingImages: u.remainingImages,
      },
    };
  },

  models(_: unknown, _args: unknown, ctx: ApiContext) {
    return ctx.deps.models.map((m, i) => ({
      id: m.id,
      default: i === 0,
      demo: m.demo,
      maxImageSize: m.maxImageSize ?? null,
    }));
  },
};
