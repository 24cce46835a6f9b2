/**
 * Tenant isolation at the data layer. THE rule (test/storage/tenant-scope-rule.test.ts checks
 * what can be checked mechanically):
 *
 * 1. For a request (API resolvers) the tenant is the API key's. Resolvers reach tenant-owned rows
 *    only through `forTenant(prisma, tenantId)` below (`ctx.db`): every read filters on tenantId,
 *    every write stamps it, updates/deletes match on (id, tenantId), and rows that point at a job
 *    are refused unless the job is the tenant's own. A write that is more than one row goes through
 *    a function that takes that tenantId and matches every row on it (enqueueJob, requestCancel,
 *    rotateWebhookSecret); no resolver touches a tenant-owned Prisma model directly.
 * 2. For a job (src/jobs, src/events: worker, job lifecycle, webhooks, sweeps) the tenant is the
 *    one stored on the Job row, and the job's id comes from our own queue, not from a client.
 *    Rows are addressed through the job (its id; its rows by jobId), every row written for it is
 *    stamped with the Job row's tenantId, and an id the CLIENT gave (an uploadId in the job's
 *    input) is resolved only through `forTenant(prisma, job.tenantId)`, since a client-given id
 *    is the one way a job could reach another tenant's row. Sweeps (retention, reconcile) work
 *    across tenants by design, handle each row under its own tenantId and return nothing to
 *    clients.
 */
import type { Prisma as P } from '../generated/prisma/client.ts';
import { AppError } from '../shared/errors.ts';
import type { Prisma } from './db.ts';

type Page<Where, OrderBy> = { where?: Where; orderBy?: OrderBy | OrderBy[]; take?: number; skip?: number };
type Data<T> = Omit<T, 'tenantId'>;

export type TenantScope = ReturnType<typeof forTenant>;

export function forTenant(prisma: Prisma, tenantId: string) {
  const own = <W extends object>(where?: W) => ({ AND: [where ?? {}, { tenantId }] }) as W;
  const notFound = (what: string, id: string) => new AppError('NOT_FOUND', `${what} ${id} was not found`);

  async function assertOwnJob(jobId: string | null | undefined): Promise<void> {
    if (!jobId) return;
    const n = await prisma.job.count({ where: { id: jobId, tenantId } });
    if (n === 0) throw notFound('job', jobId);
  }

  return {
    tenantId,

    jobs: {
      findMany: (a: Page<P.JobWhereInput, P.JobOrderByWithRelationInput> = {}) =>
        prisma.job.findMany({ ...a, where: own(a.where) }),
      findById: (id: string) => prisma.job.findFirst({ where: { id, tenantId } }),
      findByIdempotencyKey: (idempotencyKey: string) =>
        prisma.job.findUnique({ where: { tenantId_idempotencyKey: { tenantId, idempotencyKey } } }),
      count: (where?: P.JobWhereInput) => prisma.job.count({ where: own(where) }),
      create: (data: Data<P.JobUncheckedCreateInput>) => prisma.job.create({ data: { ...data, tenantId } }),
      /** Updates the tenant's job; NOT_FOUND when it is not theirs. `where` adds conditions (e.g. status). */
      async update(id: string, data: Data<P.JobUncheckedUpdateManyInput>, where: P.JobWhereInput = {}) {
        const r = await prisma.job.updateMany({
          where: { AND: [where, { id, tenantId }] },
          data: stripTenant(data),
        });
        if (r.count === 0) throw notFound('job', id);
        return prisma.job.findFirstOrThrow({ where: { id, tenantId } });
      },
      updateMany: (where: P.JobWhereInput, data: Data<P.JobUncheckedUpdateManyInput>) =>
        prisma.job.updateMany({ where: own(where), data: stripTenant(data) }),
      deleteMany: (where: P.JobWhereInput) => prisma.job.deleteMany({ where: own(where) }),
    },

    events: {
      /** Events of one job with seq > afterSeq, oldest first. */
      listAfter: (jobId: string, afterSeq = 0, take?: number) =>
        prisma.jobEvent.findMany({
          where: { jobId, tenantId, seq: { gt: afterSeq } },
          orderBy: { seq: 'asc' },
          take,
        }),
      async create(data: Data<P.JobEventUncheckedCreateInput>) {
        await assertOwnJob(data.jobId);
        return prisma.jobEvent.create({ data: { ...data, tenantId } });
      },
    },

    assets: {
      findMany: (a: Page<P.AssetWhereInput, P.AssetOrderByWithRelationInput> = {}) =>
        prisma.asset.findMany({ ...a, where: own(a.where) }),
      findById: (id: string) => prisma.asset.findFirst({ where: { id, tenantId } }),
      async create(data: Data<P.AssetUncheckedCreateInput>) {
        await assertOwnJob(data.jobId);
        return prisma.asset.create({ data: { ...data, tenantId } });
      },
      deleteMany: (where: P.AssetWhereInput) => prisma.asset.deleteMany({ where: own(where) }),
    },

    uploads: {
      findById: (id: string) => prisma.upload.findFirst({ where: { id, tenantId } }),
      findMany: (a: Page<P.UploadWhereInput, P.UploadOrderByWithRelationInput> = {}) =>
        prisma.upload.findMany({ ...a, where: own(a.where) }),
      create: (data: Data<P.UploadUncheckedCreateInput>) =>
        prisma.upload.create({ data: { ...data, tenantId } }),
      async update(id: string, data: Data<P.UploadUncheckedUpdateManyInput>, where: P.UploadWhereInput = {}) {
        const r = await prisma.upload.updateMany({
          where: { AND: [where, { id, tenantId }] },
          data: stripTenant(data),
        });
        if (r.count === 0) throw notFound('upload', id);
        return prisma.upload.findFirstOrThrow({ where: { id, tenantId } });
      },
    },

    usage: {
      findMany: (a: Page<P.UsageRecordWhereInput, P.UsageRecordOrderByWithRelationInput> = {}) =>
        prisma.usageRecord.findMany({ ...a, where: own(a.where) }),
      async create(data: Data<P.UsageRecordUncheckedCreateInput>) {
        await assertOwnJob(data.jobId);
        return prisma.usageRecord.create({ data: { ...data, tenantId } });
      },
      /** Totals since `since` (e.g. the start of the billing month). */
      async totals(since: Date) {
        const r = await prisma.usageRecord.aggregate({
          where: { tenantId, at: { gte: since } },
          _sum: { images: true, tokens: true, gpuMs: true },
        });
        return { images: r._sum.images ?? 0, tokens: r._sum.tokens ?? 0, gpuMs: r._sum.gpuMs ?? 0 };
      },
    },
  };
}

/** Callers typed with Omit<…,'tenantId'> can still smuggle it in via a cast; drop it at runtime. */
function stripTenant<T extends object>(data: T): T {
  const { tenantId: _ignored, ...rest } = data as T & { tenantId?: unknown };
  return rest as T;
}
