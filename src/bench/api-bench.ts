/**
 * API benchmark on loopback, bounded in time: autocannon against POST /graphql.
 *
 * - enqueue (generate -> Job row + event + queue message, quota checked) for one tenant and for
 *   ten tenants, interleaved with its floor: a bare Apollo Server whose `generate` inserts one Job
 *   row and sends the pg-boss message in one transaction on the same database (api-floors.ts);
 * - the `job` query, interleaved with a bare Apollo Server doing the same one-row read through
 *   the same Prisma client, and with one returning a constant (the older comparison);
 * - the delay from an event's commit to its arrival at 1,000 concurrent graphql-ws subscribers.
 *
 * Interleaved (interleave.ts): each compared variant runs in short alternating slices, so the
 * shared machine's changing load hits all of them alike. No worker runs: only the API is measured.
 *
 * Database: a fresh schema on DATABASE_URL (default the local Postgres), dropped afterwards;
 * storage: s3rver in a temp folder.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { apiSetup, type MountedApi } from '../api/mount.ts';
import { loadConfig } from '../config/config.ts';
import { startEmbeddedS3 } from '../embedded/s3.ts';
import { startServer } from '../server/server.ts';
import { createApiKey } from '../tenancy/api-keys.ts';
import { startConstantServer, startFloorServer } from './api-floors.ts';
import { percentile, runInterleaved } from './interleave.ts';
import type { ApiBenchFn } from './run-bench.ts';
import { measureSubscriberDelays } from './subscriber-delay.ts';

export type ApiBenchResult = {
  enqueueP50Ms: number;
  enqueueP99Ms: number;
  queryP99Ms: number;
  /** Job queries per second through the full stack. */
  throughput: number;
  /** Full-stack job query mean latency / bare Apollo (constant resolver) mean latency. */
  overheadVsBareApollo: number;
  subscriberEventDelayP99Ms: number;
  /** Enqueue p50 / the floor's p50 (job insert + pg-boss send in one transaction), interleaved. */
  enqueueVsFloorP50: number;
  /** Enqueue p99 with the same connections spread over ten tenants. */
  enqueueP99Ms10Tenants: number;
  /** Job query mean / a bare Apollo doing the same one-row read through the same driver. */
  queryVsBareReadMean: number;
  details: Record<string, number>;
};

export type ApiBenchOptions = {
  quick?: boolean;
  log?: (line: string) => void;
  databaseUrl?: string;
  /** Default 1,000. */
  subscribers?: number;
  /** Interleaved rounds per comparison (default 4 quick, 6 full). */
  rounds?: number;
  /** Seconds per slice of one variant in a round (default 1 quick, 2 full). */
  sliceSeconds?: number;
};

async function exec(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

export async function runApiBench(opts: ApiBenchOptions = {}): Promise<ApiBenchResult> {
  const log = opts.log ?? (() => {});
  const rounds = opts.rounds ?? (opts.quick ? 4 : 6);
  const sliceSeconds = opts.sliceSeconds ?? (opts.quick ? 1 : 2);
  const connections = 10;
  const subscribers = opts.subscribers ?? 1000;
  const baseUrl =
    opts.databaseUrl ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const schema = `bench_api_${randomBytes(4).toString('hex')}`;
  const u = new URL(baseUrl);
  u.searchParams.set('schema', schema);
  u.searchParams.set('options', `-c search_path=${schema}`);
  const s3dir = mkdtempSync(join(tmpdir(), 'harmon-api-bench-'));
  const s3 = await startEmbeddedS3(s3dir, { bucket: 'bench' });
  const cleanups: (() => Promise<void>)[] = [
    async () => rmSync(s3dir, { recursive: true, force: true }),
    () => s3.stop(),
    () =>
      exec(
        baseUrl,
        `DROP SCHEMA IF EXISTS "${schema}" CASCADE; DROP SCHEMA IF EXISTS "${schema}_boss" CASCADE`,
      ),
  ];
  try {
    const config = loadConfig({
      PORT: '0',
      DATABASE_URL: u.toString(),
      S3_ENDPOINT: s3.endpoint,
      S3_BUCKET: 'bench',
      S3_ACCESS_KEY_ID: 'S3RVER',
      S3_SECRET_ACCESS_KEY: 'S3RVER',
      LOG_LEVEL: 'silent',
    });
    let mounted: MountedApi | undefined;
    const server = await startServer(config, {
      setup: [apiSetup({}, (m) => (mounted = m))],
      log: pino({ level: 'silent' }),
    });
    cleanups.push(() => server.close());
    if (!mounted) throw new Error('the API did not mount');
    const api = mounted;
    // Limits far above what the bench can reach: it measures the path, not the refusals.
    const newKey = async (name: string) => {
      const k = await createApiKey(server.prisma, name);
      await server.prisma.tenant.update({
        where: { id: k.tenantId },
        data: { ratePerMinute: 10_000_000, monthlyImageQuota: 100_000_000 },
      });
      return k;
    };
    const key = await newKey('bench');
    const tenKeys = await Promise.all(Array.from({ length: 10 }, (_, i) => newKey(`bench-${i}`)));
    // The floor writes to a tenant of its own, so its rows do not add to the quota sums it skips.
    const floorTenant = (await newKey('bench-floor')).tenantId;
    const json = { 'content-type': 'application/json' };
    const auth = (k: string) => ({ ...json, authorization: `Bearer ${k}` });
    const post = (url: string, query: string, extra: object = {}) => ({
      url: `${url}/graphql`,
      method: 'POST',
      headers: auth(key.key),
      body: JSON.stringify({ query }),
      connections,
      ...extra,
    });

    const model = api.deps.models[0].id;
    const floor = await startFloorServer({
      prisma: server.prisma,
      queue: api.queue,
      tenantId: floorTenant,
      modelId: model,
    });
    cleanups.push(() => floor.close());
    const generate = 'mutation { generate(input: { prompt: "bench", size: 64, steps: 2 }) { id status } }';
    const enq = await runInterleaved(
      [
        { name: 'enqueue', options: post(server.url, generate) },
        {
          name: 'enqueue floor (job insert + pg-boss send)',
          options: post(floor.url, generate, { headers: json }),
        },
        {
          name: 'enqueue, 10 tenants',
          options: post(server.url, generate),
          headersPerConnection: tenKeys.map((k) => auth(k.key)),
        },
      ],
      { rounds, sliceSeconds, log },
    );
    // Every 2xx must have made a job: a GraphQL error answers 200 too and would flatter the figures.
    const jobsOf = (tenantIds: string[]) =>
      server.prisma.job.count({ where: { tenantId: { in: tenantIds } } });
    const made = await jobsOf([key.tenantId, ...tenKeys.map((k) => k.tenantId)]);
    const floorMade = await jobsOf([floorTenant]);
    const measured = enq.enqueue.requests + enq['enqueue, 10 tenants'].requests;
    if (made < measured || floorMade < enq['enqueue floor (job insert + pg-boss send)'].requests)
      throw new Error(
        `enqueue: ${made} jobs for ${measured} successful responses; some answered with errors`,
      );

    const one = await server.prisma.job.findFirstOrThrow({ where: { tenantId: key.tenantId } });
    const floorOne = await server.prisma.job.findFirstOrThrow({ where: { tenantId: floorTenant } });
    const fields = 'id kind status progress model params createdAt';
    const jobQuery = `{ job(id: "${one.id}") { ${fields} } }`;
    // Each server must answer with the row itself before its latency means anything.
    for (const [url, id, h] of [
      [server.url, one.id, auth(key.key)],
      [floor.url, floorOne.id, json],
    ] as const) {
      const r = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: h,
        body: JSON.stringify({ query: `{ job(id: "${id}") { ${fields} } }` }),
      });
      const body = (await r.json()) as { data?: { job?: { id?: string } } };
      if (body.data?.job?.id !== id) throw new Error(`job query at ${url}: ${JSON.stringify(body)}`);
    }
    const constant = await startConstantServer();
    cleanups.push(() => constant.close());
    const q = await runInterleaved(
      [
        { name: 'job query', options: post(server.url, jobQuery) },
        {
          name: 'bare Apollo, same one-row read',
          options: post(floor.url, `{ job(id: "${floorOne.id}") { ${fields} } }`, { headers: json }),
        },
        { name: 'bare Apollo, constant', options: post(constant.url, jobQuery, { headers: json }) },
      ],
      { rounds, sliceSeconds, log },
    );
    const query = q['job query'];
    const bareRead = q['bare Apollo, same one-row read'];
    const bareConst = q['bare Apollo, constant'];
    const enqueue = enq.enqueue;
    const enqueueFloor = enq['enqueue floor (job insert + pg-boss send)'];
    const enqueue10 = enq['enqueue, 10 tenants'];

    // 1,000 subscribers on one job.
    const delays = await measureSubscriberDelays({
      serverUrl: server.url,
      prisma: server.prisma,
      apiKey: key.key,
      tenantId: key.tenantId,
      jobId: one.id,
      subscribers,
      events: opts.quick ? 5 : 20,
    });
    const delayP99 = percentile(delays, 99);
    log(
      `api: event delay to ${subscribers} subscribers p50 ${percentile(delays, 50).toFixed(1)} ms, p99 ${delayP99.toFixed(1)} ms`,
    );

    const ratio = (x: number, y: number) => x / Math.max(y, 0.001);
    return {
      enqueueP50Ms: enqueue.p50Ms,
      enqueueP99Ms: enqueue.p99Ms,
      queryP99Ms: query.p99Ms,
      throughput: query.rate,
      overheadVsBareApollo: ratio(query.meanMs, bareConst.meanMs),
      subscriberEventDelayP99Ms: delayP99,
      enqueueVsFloorP50: ratio(enqueue.p50Ms, enqueueFloor.p50Ms),
      enqueueP99Ms10Tenants: enqueue10.p99Ms,
      queryVsBareReadMean: ratio(query.meanMs, bareRead.meanMs),
      details: {
        enqueueRate: enqueue.rate,
        enqueueRequests: enqueue.requests,
        enqueueMeanMs: enqueue.meanMs,
        enqueueFloorP50Ms: enqueueFloor.p50Ms,
        enqueueFloorP99Ms: enqueueFloor.p99Ms,
        enqueueFloorRate: enqueueFloor.rate,
        enqueueP50Ms10Tenants: enqueue10.p50Ms,
        enqueueRate10Tenants: enqueue10.rate,
        queryP50Ms: query.p50Ms,
        queryMeanMs: query.meanMs,
        bareReadMeanMs: bareRead.meanMs,
        bareReadP50Ms: bareRead.p50Ms,
        bareReadP99Ms: bareRead.p99Ms,
        bareReadThroughput: bareRead.rate,
        bareQueryMeanMs: bareConst.meanMs,
        bareQueryP50Ms: bareConst.p50Ms,
        bareQueryP99Ms: bareConst.p99Ms,
        bareThroughput: bareConst.rate,
        subscribers,
        subscriberEventDelayP50Ms: percentile(delays, 50),
        connections,
        rounds,
        sliceSeconds,
      },
    };
  } finally {
    for (const fn of cleanups.reverse()) await fn().catch(() => {});
  }
}

/** The shape `harmon bench` (src/bench/run-bench.ts) consumes. */
export const apiBenchProvider: ApiBenchFn = async ({ quick, log }) => {
  const r = await runApiBench({ quick, log });
  const { details, ...figures } = r;
  return { figures: { ...figures, details } };
};
