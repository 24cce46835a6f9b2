/**
 * An API server for tests: real Postgres (fresh schema), real s3rver, the real pg-boss queue and
 * EventBus, over real HTTP/WebSocket on a random loopback port. No worker runs unless a test
 * starts one, so jobs stay QUEUED and tests drive events through the real event log.
 */
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { type ApiOptions, apiSetup, type MountedApi } from '../../src/api/mount.ts';
import { embeddedWorkerSetup } from '../../src/cli/embedded-worker.ts';
import { loadConfig } from '../../src/config/config.ts';
import { queueOptionsFromConfig } from '../../src/jobs/queue/from-config.ts';
import { type ServerHandle, startServer } from '../../src/server/server.ts';
import { createApiKey } from '../../src/tenancy/api-keys.ts';
import { type FreshDatabase, freshDatabase } from '../helpers/pg.ts';
import { startS3, type TestS3 } from '../helpers/s3.ts';

export type GqlResponse<T = Record<string, unknown>> = {
  status: number;
  headers: Headers;
  body: {
    data?: T | null;
    errors?: { message: string; path?: string[]; extensions?: Record<string, unknown> }[];
  };
};

export type ApiHarness = {
  server: ServerHandle;
  api: MountedApi;
  db: FreshDatabase;
  s3: TestS3;
  url: string;
  newTenant(name: string, scopes?: string[]): Promise<{ key: string; tenantId: string }>;
  gql<T = Record<string, unknown>>(
    key: string | undefined,
    query: string,
    variables?: Record<string, unknown>,
    headers?: Record<string, string>,
  ): Promise<GqlResponse<T>>;
  ws(key: string | undefined): Client;
  close(): Promise<void>;
};

export async function startApi(
  options: {
    env?: Record<string, string>;
    lookup?: (host: string) => Promise<string[]>;
    workerModelDirs?: string[];
    /** Passed to apiSetup: key cache, admission tuning. */
    apiOptions?: Pick<ApiOptions, 'keyCache' | 'admission'>;
    /** Another harness's database: a second API instance on it (the database stays its owner's). */
    sharedDb?: FreshDatabase;
  } = {},
): Promise<ApiHarness> {
  const db = options.sharedDb ?? (await freshDatabase({ migrate: false }));
  const s3 = await startS3('api-test');
  const config = loadConfig({
    PORT: '0',
    DATABASE_URL: db.url,
    S3_ENDPOINT: s3.endpoint,
    S3_BUCKET: 'api-test',
    S3_ACCESS_KEY_ID: 'S3RVER',
    S3_SECRET_ACCESS_KEY: 'S3RVER',
    HARMON_HOME: '/nonexistent/never-created',
    LOG_LEVEL: 'silent',
    ...options.env,
  });
  let api: MountedApi | undefined;
  const queue = (databaseUrl: string) => queueOptionsFromConfig(config, databaseUrl);
  const setup = [
    apiSetup(
      { queue, lookup: options.lookup, modelDirs: options.workerModelDirs, ...options.apiOptions },
      (a) => (api = a),
    ),
  ];
  // The real in-process worker of `harmon serve`, on the given model directories.
  if (options.workerModelDirs) setup.push(embeddedWorkerSetup(options.workerModelDirs, () => api));
  const server = await startServer(config, { setup });
  const clients: Client[] = [];
  const url = server.url;
  return {
    server,
    api: api as MountedApi,
    db,
    s3,
    url,
    async newTenant(name, scopes) {
      const k = await createApiKey(db.prisma, name, scopes);
      return { key: k.key, tenantId: k.tenantId };
    },
    async gql(key, query, variables, headers = {}) {
      const res = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(key ? { authorization: `Bearer ${key}` } : {}),
          ...headers,
        },
        body: JSON.stringify({ query, variables }),
      });
      const text = await res.text();
      let body: GqlResponse['body'];
      try {
        body = JSON.parse(text);
      } catch {
        body = { errors: [{ message: `non-JSON response: ${text.slice(0, 200)}` }] };
      }
      return { status: res.status, headers: res.headers, body } as GqlResponse<never>;
    },
    ws(key) {
      const c = createClient({
        url: `${url.replace('http', 'ws')}/graphql`,
        webSocketImpl: WebSocket,
        connectionParams: key ? { authorization: `Bearer ${key}` } : {},
        retryAttempts: 0,
        lazy: true,
      });
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) await c.dispose();
      await server.close();
      await s3.stop();
      if (!options.sharedDb) await db.drop();
    },
  };
}

/** Collects a subscription's results until it completes (or `max` results, then unsubscribes). */
export async function collect<T>(
  client: Client,
  query: string,
  variables: Record<string, unknown>,
  max = Number.POSITIVE_INFINITY,
): Promise<{ data: T[]; errors: unknown[] }> {
  const data: T[] = [];
  const errors: unknown[] = [];
  const it = client.iterate<T>({ query, variables });
  try {
    for await (const r of it) {
      if (r.errors) errors.push(...r.errors);
      if (r.data) data.push(r.data as T);
      if (data.length + errors.length >= max) break;
    }
  } catch (e) {
    errors.push(e);
  }
  return { data, errors };
}

export const JOB_FIELDS =
  'id kind status progress model params error { code message } text images { url width height contentType bytes }';

/** A minimal generate mutation and its variables (a cheap 64 px, 2-step request by default). */
export const GEN = 'mutation($i: GenerateInput!){ generate(input:$i) { id status } }';
export const gen = (i: Record<string, unknown>) => ({ i: { prompt: 'p', size: 64, steps: 2, ...i } });
