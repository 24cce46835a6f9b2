/**
 * Shared setup for the worker tests: fresh schema (+ its pg-boss schema), s3rver, the REAL tiny
 * random-weight model built into a temp dir, and the queue options the API and worker share.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { loadConfig } from '../../src/config/config.ts';
import { EventBus } from '../../src/events/event-bus.ts';
import type { JobEventRecord } from '../../src/events/job-events.ts';
import { createJobQueue, type QueueBackendOptions } from '../../src/jobs/queue/create-queue.ts';
import { queueOptionsFromConfig } from '../../src/jobs/queue/from-config.ts';
import type { HarmonJobPayload, JobQueue } from '../../src/jobs/queue/port.ts';
import { buildTinyModel } from '../../src/onnx/tiny.ts';
import { type FreshDatabase, freshDatabase, TEST_DATABASE_URL } from '../helpers/pg.ts';
import { startS3, type TestS3 } from '../helpers/s3.ts';

export interface WorkerFixture {
  db: FreshDatabase;
  s3: TestS3;
  modelDir: string;
  /** The tiny model's id (its manifest's). */
  modelId: string;
  queueOptions: QueueBackendOptions & { backend: 'postgres' };
  /** Producer side, as the API would hold it. */
  queue: JobQueue<HarmonJobPayload>;
  bus: EventBus;
  /** Environment for a `harmon worker` child process. */
  env: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

export async function workerFixture(
  policy: { visibilityTimeoutSeconds?: number; maxAttempts?: number; retryDelaySeconds?: number } = {},
): Promise<WorkerFixture> {
  const db = await freshDatabase();
  const s3 = await startS3();
  const root = await mkdtemp(join(tmpdir(), 'harmon-worker-'));
  const modelDir = join(root, 'tiny');
  const { modelId } = await buildTinyModel({ outDir: modelDir, seed: 3 });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: db.url,
    S3_ENDPOINT: s3.s3.endpoint,
    S3_BUCKET: s3.bucket,
    S3_ACCESS_KEY_ID: s3.s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3.s3.secretAccessKey,
    HARMON_MODEL: modelDir,
    HARMON_HOME: root,
    LOG_LEVEL: 'silent',
  };
  const base = queueOptionsFromConfig(loadConfig(env), db.url) as QueueBackendOptions & {
    backend: 'postgres';
  };
  const queueOptions = {
    ...base,
    pollIntervalMs: 500,
    maintenanceIntervalSeconds: 1,
    poolMax: 2,
    policy: {
      visibilityTimeoutSeconds: 30,
      maxAttempts: 3,
      retryDelaySeconds: 1,
      retryBackoff: false,
      ...policy,
    },
  };
  const queue = createJobQueue<HarmonJobPayload>(queueOptions);
  await queue.start();
  const bus = new EventBus({ prisma: db.prisma, databaseUrl: db.url, pollIntervalMs: 1000 });
  await bus.start();
  return {
    db,
    s3,
    modelDir,
    modelId,
    queueOptions,
    queue,
    bus,
    env,
    async close() {
      await bus.close();
      await queue.close();
      const c = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS "${queueOptions.schema}" CASCADE`);
      await c.end();
      await db.drop();
      await s3.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** Collects a job's whole event stream until it completes (terminal event) or `timeoutMs`. */
export async function collectEvents(
  bus: EventBus,
  tenantId: string,
  jobId: string,
  timeoutMs = 60_000,
  onEvent?: (e: JobEventRecord) => void,
): Promise<JobEventRecord[]> {
  const it = bus.subscribeJob(tenantId, jobId, 0);
  const out: JobEventRecord[] = [];
  const timer = setTimeout(() => void it.return?.(), timeoutMs);
  try {
    for await (const e of it) {
      out.push(e);
      onEvent?.(e);
    }
  } finally {
    clearTimeout(timer);
  }
  return out;
}

export const summary = (events: JobEventRecord[]) => events.map((e) => `${e.type}:${e.payload.status}`);
