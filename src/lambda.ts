/**
 * AWS Lambda entry of the HTTP GraphQL endpoint (infra context `graphqlLambda=true`; loaded by
 * infra/docker/lambda-entry.mjs). Cold start: secrets -> config -> Prisma, S3, queue producer ->
 * the API's schema behind @as-integrations/aws-lambda's ALB handler. Warm invocations reuse all
 * of it. Queries and mutations only; jobs are run by the GPU workers from the same queue.
 *
 * Environment: what `loadConfig` reads (DATABASE_URL, S3_*, QUEUE_BACKEND, SQS_*, HARMON_MODEL,
 * ...), where DATABASE_URL may instead come from DATABASE_SECRET_ARN (the Aurora secret).
 * Migrations are not run here (a one-off task does that).
 */

import type { ALBEvent, ALBResult, Context } from 'aws-lambda';
import { createMetrics } from './api/metrics.ts';
import { listModels } from './api/models.ts';
import { createAdmission } from './api/plugins.ts';
import { resolvers } from './api/resolvers/index.ts';
import { buildExecutableSchema } from './api/schema.ts';
import {
  createGraphqlLambdaHandler,
  type GraphqlLambdaHandler,
  noSubscriptions,
} from './api/transport/lambda.ts';
import type { ApiDeps } from './api/types.ts';
import { loadConfig } from './config/config.ts';
import { envFromSecrets } from './config/secrets-env.ts';
import { createJobQueue } from './jobs/queue/create-queue.ts';
import { queueOptionsFromConfig } from './jobs/queue/from-config.ts';
import type { HarmonJobPayload } from './jobs/queue/port.ts';
import { AppError } from './shared/errors.ts';
import { logger } from './shared/logger.ts';
import { createBlobStore } from './storage/blob-store.ts';
import { createPrisma } from './storage/db.ts';
import { postgresRateLimiter } from './tenancy/rate-limit.ts';

export type GraphqlLambda = { handler: GraphqlLambdaHandler; close(): Promise<void> };

/** Builds the handler and everything it holds from an environment (tests call this directly). */
export async function createGraphqlLambda(env: NodeJS.ProcessEnv = process.env): Promise<GraphqlLambda> {
  const config = loadConfig({ ...env, ...(await envFromSecrets(env)) });
  // A Lambda has no disk to keep PGlite or s3rver on: the embedded defaults make no sense here.
  if (!config.databaseUrl)
    throw new AppError('BAD_CONFIG', 'The GraphQL Lambda needs DATABASE_URL or DATABASE_SECRET_ARN.');
  if (!config.s3) throw new AppError('BAD_CONFIG', 'The GraphQL Lambda needs S3_BUCKET.');
  const log = logger.child({ component: 'lambda' });
  // One request at a time per Lambda instance: a small pool bounds Aurora connections as the
  // function scales out.
  const prisma = createPrisma(config.databaseUrl, { max: 2 });
  const blobStore = createBlobStore(config.s3);
  // Not started: SQS send needs no setup (and the function may not read the DLQ's attributes);
  // the pg-boss producer starts itself on the first send.
  const queue = createJobQueue<HarmonJobPayload>(queueOptionsFromConfig(config, config.databaseUrl));
  const deps: ApiDeps = {
    config,
    prisma,
    blobStore,
    queue,
    events: noSubscriptions,
    rateLimiter: postgresRateLimiter(prisma),
    models: listModels(config.modelDirs),
    metrics: createMetrics(prisma, { queue }),
    log,
  };
  const schema = buildExecutableSchema(resolvers);
  const admission = createAdmission(deps, schema);
  const handler = createGraphqlLambdaHandler(schema, deps, admission);
  return {
    handler,
    async close() {
      admission.close();
      await queue.close();
      blobStore.close();
      await prisma.$disconnect();
    },
  };
}

let instance: Promise<GraphqlLambda> | undefined;

/** The function's handler: the first invocation of an execution environment builds everything. */
export async function handler(event: ALBEvent, context: Context): Promise<ALBResult> {
  instance ??= createGraphqlLambda();
  let lambda: GraphqlLambda;
  try {
    lambda = await instance;
  } catch (e) {
    // A failed cold start (secret not readable yet, bad config) is retried on the next event.
    instance = undefined;
    throw e;
  }
  return lambda.handler(event, context);
}
