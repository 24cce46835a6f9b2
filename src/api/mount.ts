/**
 * Wires the GraphQL API into the HTTP server as a `startServer` setup hook: builds the schema,
 * the queue producer, the event bus, the rate limiter and metrics, then mounts POST /graphql
 * (Apollo), the graphql-ws upgrade on /graphql, graphql-sse on /graphql/stream and /metrics, and
 * registers their shutdown.
 */
import type { Config } from '../config/config.ts';
import { EventBus } from '../jobs/event-bus.ts';
import type { QueueBackendOptions } from '../jobs/queue/create-queue.ts';
import { createJobQueue } from '../jobs/queue/create-queue.ts';
import type { HarmonJobPayload, JobQueue } from '../jobs/queue/port.ts';
import type { ServerContext, SetupHook } from '../server/server.ts';
import { AppError } from '../shared/errors.ts';
import { schemaFromUrl } from '../storage/db.ts';
import type { ApiKeyCache } from '../tenancy/key-cache.ts';
import { batchedRateLimiter } from '../tenancy/rate-batch.ts';
import { postgresRateLimiter } from '../tenancy/rate-limit.ts';
import { createMetrics } from './metrics.ts';
import { listModels } from './models.ts';
import { type AdmissionOptions, createAdmission } from './plugins.ts';
import { resolvers } from './resolvers/index.ts';
import { buildExecutableSchema } from './schema.ts';
import { createApollo, graphqlHttpHandler } from './transport/http.ts';
import { graphqlSseHandler } from './transport/sse.ts';
import { attachGraphqlWs } from './transport/ws.ts';
import type { ApiDeps, JobEventSource } from './types.ts';

/**
 * The queue backend for a config: pg-boss in the application database (its own schema next to
 * the app schema, so a test's fresh schema gets a fresh queue) or SQS. API and worker must use
 * the same options; `harmon serve` passes these to its in-process worker.
 */
export function queueOptionsFromConfig(config: Config, databaseUrl: string): QueueBackendOptions {
  if (config.queue.backend === 'sqs') {
    const { sqsQueueUrl, sqsDlqUrl, sqsEndpoint } = config.queue;
    if (!sqsQueueUrl || !sqsDlqUrl)
      throw new AppError('BAD_CONFIG', 'QUEUE_BACKEND=sqs needs SQS_QUEUE_URL and SQS_DLQ_URL');
    return {
      backend: 'sqs',
      queueUrl: sqsQueueUrl,
      dlqUrl: sqsDlqUrl,
      endpoint: sqsEndpoint,
      region: config.s3?.region,
    };
  }
  const appSchema = schemaFromUrl(databaseUrl);
  return {
    backend: 'postgres',
    connectionString: databaseUrl,
    schema: appSchema ? `${appSchema}_boss`.toLowerCase() : 'pgboss',
  };
}

export type ApiOptions = {
  /** Use this queue instead of one built from config (tests, or shared with a worker). */
  queue?: JobQueue<HarmonJobPayload>;
  /** Use this event source instead of a new EventBus. */
  events?: JobEventSource & { close?(): Promise<void> };
  /** Model directories to list (default: config.modelDirs); serve passes the demo model's. */
  modelDirs?: string[];
  /** DNS resolution for describe URLs (tests). */
  lookup?: (host: string) => Promise<string[]>;
  /** The API-key cache to authenticate through (tests simulate another process's revoke). */
  keyCache?: ApiKeyCache;
  /** Admission tuning (tests): key re-check interval of open streams, failed-auth budget. */
  admission?: AdmissionOptions;
};

export type MountedApi = { deps: ApiDeps; queue: JobQueue<HarmonJobPayload> };

/** Mounts the API on a starting server; the returned promise resolves to what it built. */
export async function mountApi(ctx: ServerContext, options: ApiOptions = {}): Promise<MountedApi> {
  const { config, prisma, blobStore, app, httpServer, log, databaseUrl } = ctx;

  let queue = options.queue;
  if (!queue) {
    const q = createJobQueue<HarmonJobPayload>(queueOptionsFromConfig(config, databaseUrl));
    await q.start();
    ctx.onClose(() => q.close());
    queue = q;
  }
  let events = options.events;
  if (!events) {
    const bus = new EventBus({ prisma, databaseUrl, log });
    await bus.start();
    ctx.onClose(() => bus.close());
    events = bus;
  }
  const q = queue;
  const metrics = createMetrics(prisma, { queue: q });
  const deps: ApiDeps = {
    config,
    prisma,
    blobStore,
    queue: q,
    events,
    // Long-lived process: reserve tokens in small batches (exact for small limits, rate-batch.ts).
    rateLimiter: batchedRateLimiter(postgresRateLimiter(prisma)),
    models: listModels(options.modelDirs ?? config.modelDirs),
    metrics,
    log: log.child({ component: 'api' }),
    lookup: options.lookup,
    keyCache: options.keyCache,
  };

  const schema = buildExecutableSchema(resolvers);
  // One admission path (plugins.ts) for every transport mounted here.
  const admission = createAdmission(deps, schema, options.admission);
  ctx.onClose(() => admission.close());
  const apollo = await createApollo(schema, deps, admission);
  ctx.onClose(() => apollo.stop());
  app.mount('/graphql', graphqlHttpHandler(apollo, deps, admission));
  app.mount('/graphql/stream', graphqlSseHandler(schema, deps, admission));
  app.mount('/metrics', metrics.handler(config.metricsToken));
  const ws = attachGraphqlWs(httpServer, schema, deps, admission);
  // Registered last, so it runs first on close: sockets go before the bus and the database.
  ctx.onClose(() => ws.close());
  return { deps, queue: q };
}

/** `startServer(config, { setup: [apiSetup()] })`. */
export function apiSetup(options: ApiOptions = {}, onMounted?: (api: MountedApi) => void): SetupHook {
  return async (ctx) => {
    const api = await mountApi(ctx, options);
    onMounted?.(api);
  };
}
