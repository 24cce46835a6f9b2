/**
 * Prometheus metrics for GET /metrics. One registry per server (not prom-client's global one), so
 * several servers in one process (tests) do not collide. Job figures are read from the database
 * at scrape time, which makes them true for the whole deployment, not only for the jobs this
 * process happened to see; stage latencies are observed into histograms for jobs that finished
 * since the previous scrape (a watermark), so the histograms stay cumulative as Prometheus expects.
 * Pipeline stage timings come from `Job.stageMs`, which the worker stores with the result: the
 * worker may be another process (`harmon worker`, a GPU function) that this registry never sees.
 *
 * Exposure: series labelled with tenant ids (GPU-ms per tenant) live in a second registry. With
 * METRICS_TOKEN set, /metrics needs `Authorization: Bearer <token>` and serves both; without it,
 * /metrics is open and serves only the deployment-wide series, so no tenant id or usage leaks.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { bearerToken, sendJson } from '../server/app.ts';
import type { Prisma } from '../storage/db.ts';

export type ApiMetrics = ReturnType<typeof createMetrics>;

export type QueueStatsSource = {
  stats(): Promise<{ waiting: number; inFlight: number; deadLettered: number }>;
};

const STAGE_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

export function createMetrics(prisma: Prisma, options: { queue?: QueueStatsSource; since?: Date } = {}) {
  const registry = new Registry();
  /** Series with a tenant label: served only with the metrics token. */
  const tenantRegistry = new Registry();
  let watermark = options.since ?? new Date();

  const apiLatency = new Histogram({
    name: 'harmon_api_request_duration_seconds',
    help: 'GraphQL HTTP request latency',
    labelNames: ['transport', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const stageSeconds = new Histogram({
    name: 'harmon_job_stage_duration_seconds',
    help: 'Time per job stage (queue = queued until started, run = started until finished)',
    labelNames: ['stage', 'kind'] as const,
    buckets: STAGE_BUCKETS,
    registers: [registry],
  });
  const pipelineSeconds = new Histogram({
    name: 'harmon_stage_seconds',
    help: 'Time per Harmon pipeline stage of succeeded jobs (prefill, mar_step, diffusion_sampler, vae_decode, encode_png ...)',
    labelNames: ['stage', 'kind'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [registry],
  });
  const gpuMsTotal = new Counter({
    name: 'harmon_job_gpu_ms_total',
    help: 'Accelerator milliseconds of finished jobs, per tenant id and kind',
    labelNames: ['tenant', 'kind'] as const,
    registers: [tenantRegistry],
  });

  new Gauge({
    name: 'harmon_jobs',
    help: 'Jobs by status and kind',
    labelNames: ['status', 'kind'] as const,
    registers: [registry],
    async collect() {
      const rows = await prisma.$queryRaw<{ status: string; kind: string; n: number }[]>`
        SELECT status::text AS status, kind::text AS kind, COUNT(*)::int AS n FROM "Job" GROUP BY status, kind`;
      this.reset();
      for (const r of rows) this.set({ status: r.status, kind: r.kind }, Number(r.n));
    },
  });
  new Gauge({
    name: 'harmon_queue_depth',
    help: 'Jobs waiting to start (QUEUED), and queue backend counts',
    labelNames: ['source', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const [row] = await prisma.$queryRaw<
        { n: number }[]
      >`SELECT COUNT(*)::int AS n FROM "Job" WHERE status = 'QUEUED'`;
      this.set({ source: 'jobs', state: 'queued' }, Number(row?.n ?? 0));
      if (options.queue) {
        const s = await options.queue.stats().catch(() => undefined);
        if (s) {
          this.set({ source: 'queue', state: 'waiting' }, s.waiting);
          this.set({ source: 'queue', state: 'in_flight' }, s.inFlight);
          this.set({ source: 'queue', state: 'dead_lettered' }, s.deadLettered);
        }
      }
    },
  });
  new Gauge({
    name: 'harmon_queue_oldest_age_seconds',
    help: 'Age of the oldest QUEUED job',
    registers: [registry],
    async collect() {
      const [row] = await prisma.$queryRaw<{ age: number | null }[]>`
        SELECT EXTRACT(EPOCH FROM (now() - MIN("queuedAt")))::float8 AS age FROM "Job" WHERE status = 'QUEUED'`;
      this.set(Math.max(0, Number(row?.age ?? 0)));
    },
  });

  /** Observes jobs finished since the last scrape into the stage histograms. */
  async function observeFinished(): Promise<void> {
    const until = new Date();
    const jobs = await prisma.job.findMany({
      where: { finishedAt: { gt: watermark, lte: until } },
      select: {
        tenantId: true,
        kind: true,
        queuedAt: true,
        startedAt: true,
        finishedAt: true,
        gpuMs: true,
        stageMs: true,
      },
    });
    watermark = until;
    for (const j of jobs) {
      if (j.startedAt)
        stageSeconds.observe(
          { stage: 'queue', kind: j.kind },
          (j.startedAt.getTime() - j.queuedAt.getTime()) / 1000,
        );
      if (j.startedAt && j.finishedAt)
        stageSeconds.observe(
          { stage: 'run', kind: j.kind },
          (j.finishedAt.getTime() - j.startedAt.getTime()) / 1000,
        );
      if (j.gpuMs) gpuMsTotal.inc({ tenant: j.tenantId, kind: j.kind }, j.gpuMs);
      for (const [stage, ms] of stageEntries(j.stageMs))
        pipelineSeconds.observe({ stage, kind: j.kind }, ms / 1000);
    }
  }

  /** The exposition text; per-tenant series only when `withTenants`. */
  async function render(withTenants = false): Promise<string> {
    await observeFinished();
    const base = await registry.metrics();
    return withTenants ? `${base}\n${await tenantRegistry.metrics()}` : base;
  }

  return {
    registry,
    observeRequest(transport: string, status: number, seconds: number): void {
      apiLatency.observe({ transport, status: String(status) }, seconds);
    },
    /** Pipeline stage timings of work that stores no Job.stageMs (those are observed at scrape). */
    observeStage(stage: string, kind: string, seconds: number): void {
      pipelineSeconds.observe({ stage, kind }, seconds);
    },
    render,
    /** GET /metrics; with `token`, only for `Authorization: Bearer <token>` (and then with tenant series). */
    handler(token?: string) {
      const want = token ? digest(token) : undefined;
      return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
        if (req.method !== 'GET') {
          res.setHeader('allow', 'GET');
          return sendJson(res, 405, { error: { code: 'BAD_USER_INPUT', message: 'use GET' } });
        }
        if (want) {
          const given = bearerToken(req.headers.authorization);
          if (!given || !timingSafeEqual(digest(given), want)) {
            res.setHeader('www-authenticate', 'Bearer');
            return sendJson(res, 401, {
              error: {
                code: 'UNAUTHENTICATED',
                message: 'Send the metrics token as "Authorization: Bearer <token>".',
              },
            });
          }
        }
        const body = await render(want !== undefined);
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(body);
      };
    },
  };
}

/** Fixed-length digests, so the comparison takes the same time whatever the given length. */
const digest = (s: string) => createHash('sha256').update(s).digest();

/** `Job.stageMs` is JSON written by the worker; anything but finite non-negative numbers is skipped. */
function stageEntries(value: unknown): [string, number][] {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return [];
  return Object.entries(value as Record<string, unknown>).filter(
    (e): e is [string, number] => typeof e[1] === 'number' && Number.isFinite(e[1]) && e[1] >= 0,
  );
}
