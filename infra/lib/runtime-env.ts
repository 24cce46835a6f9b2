import { Duration, Stack } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import type { StatefulStack } from './stateful-stack.ts';

/** The port both containers listen on (the API for clients, the worker for /healthz + /metrics). */
export const APP_PORT = 4000;

/**
 * Environment shared by the API and the worker, in the names src/config/config.ts reads.
 * DATABASE_URL is assembled from the DB_* secret fields by infra/docker/entrypoint.sh, because
 * ECS can inject single JSON keys of a secret but cannot template a URL from them.
 */
export function sharedEnvironment(stateful: StatefulStack): Record<string, string> {
  return {
    HOST: '0.0.0.0',
    PORT: String(APP_PORT),
    NODE_ENV: 'production',
    LOG_LEVEL: 'info',
    QUEUE_BACKEND: 'sqs',
    SQS_QUEUE_URL: stateful.jobQueue.queueUrl,
    SQS_DLQ_URL: stateful.deadLetterQueue.queueUrl,
    S3_BUCKET: stateful.bucket.bucketName,
    S3_REGION: Stack.of(stateful).region,
  };
}

export function sharedSecrets(stateful: StatefulStack): Record<string, ecs.Secret> {
  const db = stateful.databaseSecret;
  return {
    DB_HOST: ecs.Secret.fromSecretsManager(db, 'host'),
    DB_PORT: ecs.Secret.fromSecretsManager(db, 'port'),
    DB_USER: ecs.Secret.fromSecretsManager(db, 'username'),
    DB_PASSWORD: ecs.Secret.fromSecretsManager(db, 'password'),
    DB_NAME: ecs.Secret.fromSecretsManager(db, 'dbname'),
  };
}

/** Container health check: the process answers GET /healthz on APP_PORT (see healthcheck.mjs). */
export function containerHealthCheck(startPeriodSeconds: number): ecs.HealthCheck {
  return {
    command: ['CMD', 'node', '/app/infra/docker/healthcheck.mjs'],
    interval: Duration.seconds(30),
    timeout: Duration.seconds(5),
    retries: 3,
    startPeriod: Duration.seconds(startPeriodSeconds),
  };
}
