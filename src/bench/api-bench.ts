/**
 * API benchmark on loopback, bounded in time: autocannon against POST /graphql for the enqueue
 * mutation (generate -> Job row + event + queue message) and the job query, the same query
 * against a bare Apollo Server with the same schema and trivial resolvers (the overhead of auth,
 * rate limit, tenancy and Postgres), and the delay from an event's commit to its arrival at 1,000
 * concurrent graphql-ws jobEvents subscribers. No worker runs: only the API is measured.
 *
 * Database: a fresh schema on DATABASE_URL (default the local Postgres), dropped afterwards;
 * storage: s3rver in a temp folder.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApolloServer, HeaderMap } from '@apollo/server';
import autocannon, { type AutocannonResult } from 'autocannon';
import { createClient } from 'graphql-ws';
import pg from 'pg';
import { pino } from 'pino';
import WebSocket from 'ws';
import { apiSetup } from '../api/mount.ts';
import { typeDefs } from '../api/schema.ts';
import { loadConfig } from '../config/config.ts';
import { startEmbeddedS3 } from '../embedded/s3.ts';
import { recordEvent } from '../jobs/job-lifecycle.ts';
import { queueOptionsFromConfig } from '../jobs/queue/from-config.ts';
import { startServer } from '../server/server.ts';
import { createApiKey } from '../tenancy/api-keys.ts';
import type { ApiBenchFn } from './run-bench.ts';

export type ApiBenchResult = {
  enqueueP50Ms: number;
  enqueueP99Ms: number;
  queryP99Ms: number;
  /** Job queries per second through the full stack. */
  throughput: number;
  /** Full-stack job query mean latency / bare Apollo mean latency for the same query. */
  overheadVsBareApollo: number;
  subscriberEventDelayP99Ms: number;
  details: Record<string, unknown>;
};

export type ApiBenchOptions = {
  quick?: boolean;
  log?: (line: string) => void;
  databaseUrl?: string;
  /** Default 1,000. */
  subscribers?: number;
  /** Seconds per autocannon run (default 4 quick, 10 full). */
  durationSeconds?: number;
};

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : Number.NaN;
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

/** A bare Apollo Server over the same schema, with resolvers that return constants. */
async function startBareApollo(): Promise<{ url: string; close(): Promise<void> }> {
  const job = {
    id: '00000000-0000-4000-8000-000000000000',
    kind: 'GENERATE',
    status: 'QUEUED',
    progress: 0,
    model: 'm',
    params: {},
    createdAt: new Date().toISOString(),
  };
  const apollo = new ApolloServer({ typeDefs, resolvers: { Query: { job: () => job } } });
  await apollo.start();
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const headers = new HeaderMap();
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers.set(k, v);
    const r = await apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest: {
        method: req.method ?? 'POST',
        headers,
        search: '',
        body: JSON.parse(Buffer.concat(chunks).toString() || '{}'),
      },
      context: async () => ({}),
    });
    res.writeHead(r.status ?? 200, Object.fromEntries(r.headers));
    res.end(r.body.kind === 'complete' ? r.body.string : '');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await apollo.stop();
    },
  };
}

export async function runApiBench(opts: ApiBenchOptions = {}): Promise<ApiBenchResult> {
  const log = opts.log ?? (() => {});
  const duration = opts.durationSeconds ?? (opts.quick ? 4 : 10);
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
    const server = await startServer(config, {
      setup: [apiSetup({ queue: (url) => queueOptionsFromConfig(config, url) })],
      log: pino({ level: 'silent' }),
    });
    cleanups.push(() => server.close());
    const key = await createApiKey(server.prisma, 'bench');
    await server.prisma.tenant.update({
      where: { id: key.tenantId },
      data: { ratePerMinute: 10_000_000, monthlyImageQuota: 100_000_000 },
    });
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${key.key}` };
    const post = (url: string, query: string, h: Record<string, string> = headers) =>
      autocannon({
        url: `${url}/graphql`,
        method: 'POST',
        headers: h,
        body: JSON.stringify({ query }),
        connections,
        duration,
      });
    const check = (name: string, r: AutocannonResult) => {
      if (r.non2xx > 0 || r.errors > 0)
        throw new Error(
          `${name}: ${r.non2xx} non-2xx responses and ${r.errors} errors out of ${r.requests.total}`,
        );
      log(`api: ${name} p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, ${r.requests.average} req/s`);
    };

    const enqueue = await post(
      server.url,
      'mutation { generate(input: { prompt: "bench", size: 64, steps: 2 }) { id status } }',
    );
    check('enqueue', enqueue);
    const one = await server.prisma.job.findFirstOrThrow({ where: { tenantId: key.tenantId } });
    const jobQuery = `{ job(id: "${one.id}") { id kind status progress model params createdAt } }`;
    const query = await post(server.url, jobQuery);
    check('job query', query);
    const bare = await startBareApollo();
    cleanups.push(() => bare.close());
    const bareQuery = await post(bare.url, jobQuery, { 'content-type': 'application/json' });
    check('bare Apollo job query', bareQuery);

    // 1,000 subscribers on one job, multiplexed over 100 graphql-ws connections.
    const job = await server.prisma.job.findFirstOrThrow({
      where: { tenantId: key.tenantId },
      orderBy: { createdAt: 'desc' },
    });
    const perConn = 10;
    const clients = Array.from({ length: Math.ceil(subscribers / perConn) }, () =>
      createClient({
        url: `${server.url.replace('http', 'ws')}/graphql`,
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${key.key}` },
        retryAttempts: 0,
      }),
    );
    cleanups.push(async () => {
      await Promise.all(clients.map((c) => c.dispose()));
    });
    const received = new Map<number, number[]>(); // seq -> arrival times
    let ready = 0;
    const unsubs: (() => void)[] = [];
    for (let i = 0; i < subscribers; i++) {
      const c = clients[Math.floor(i / perConn)];
      unsubs.push(
        c.subscribe<{ jobEvents: { seq: number } }>(
          { query: `subscription { jobEvents(jobId: "${job.id}") { seq type } }` },
          {
            next: (r) => {
              const seq = r.data?.jobEvents.seq;
              if (seq === undefined) return;
              if (seq === 1) ready++;
              else received.set(seq, [...(received.get(seq) ?? []), performance.now()]);
            },
            error: () => {},
            complete: () => {},
          },
        ),
      );
    }
    const waitFor = async (cond: () => boolean, what: string, ms = 30_000) => {
      const end = Date.now() + ms;
      while (!cond()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await waitFor(() => ready >= subscribers, `${subscribers} subscribers to replay seq 1`);
    const delays: number[] = [];
    const events = opts.quick ? 5 : 20;
    for (let k = 0; k < events; k++) {
      const t0 = performance.now();
      const ev = await recordEvent(server.prisma, job.id, key.tenantId, {
        type: 'PROGRESS',
        status: 'QUEUED',
        payload: { step: k + 1, totalSteps: events },
      });
      await waitFor(
        () => (received.get(ev.seq)?.length ?? 0) >= subscribers,
        `event ${ev.seq} at every subscriber`,
      );
      for (const t of received.get(ev.seq) ?? []) delays.push(t - t0);
    }
    for (const u2 of unsubs) u2();
    const delayP99 = percentile(delays, 99);
    log(
      `api: event delay to ${subscribers} subscribers p50 ${percentile(delays, 50).toFixed(1)} ms, p99 ${delayP99.toFixed(1)} ms`,
    );

    return {
      enqueueP50Ms: enqueue.latency.p50,
      enqueueP99Ms: enqueue.latency.p99,
      queryP99Ms: query.latency.p99,
      throughput: query.requests.average,
      // Mean latencies: autocannon's percentiles are whole milliseconds, and the bare p50 is ~0.
      overheadVsBareApollo: query.latency.average / Math.max(bareQuery.latency.average, 0.001),
      subscriberEventDelayP99Ms: delayP99,
      details: {
        enqueueRate: enqueue.requests.average,
        enqueueRequests: enqueue.requests.total,
        queryP50Ms: query.latency.p50,
        queryMeanMs: query.latency.average,
        bareQueryMeanMs: bareQuery.latency.average,
        bareQueryP50Ms: bareQuery.latency.p50,
        bareQueryP99Ms: bareQuery.latency.p99,
        bareThroughput: bareQuery.requests.average,
        subscribers,
        subscriberEventDelayP50Ms: percentile(delays, 50),
        connections,
        durationSeconds: duration,
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
