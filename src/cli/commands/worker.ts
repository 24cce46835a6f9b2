/**
 * `harmon worker`: the body of the GPU container function. Pulls jobs from the configured queue,
 * runs them on the model(s) (compatible generate jobs batched, up to WORKER_MAX_BATCH per MAR
 * loop), delivers webhooks; on SIGTERM stops pulling, lets the running job
 * finish within --grace-ms, and releases it to another worker otherwise.
 */

import type { Command } from 'commander';
import { loadConfig } from '../../config/config.ts';
import { resolveDatabase, resolveS3 } from '../../embedded/resolve.ts';
import { DEMO_NOTICE } from '../../harmon/events.ts';
import { createEngineRunner } from '../../jobs/engine-runner.ts';
import { workerSessionUrl } from '../../jobs/job-locks.ts';
import { queueOptionsFromConfig } from '../../jobs/queue/from-config.ts';
import { startWorkerService } from '../../jobs/service.ts';
import { ensureDemoModel } from '../../onnx/demo-model.ts';
import { AppError } from '../../shared/errors.ts';
import { logger } from '../../shared/logger.ts';
import { createBlobStore } from '../../storage/blob-store.ts';
import { createPrisma } from '../../storage/db.ts';
import { migrate } from '../../storage/migrate.ts';
import { loadSummary } from '../load-summary.ts';

type Opts = {
  model?: string;
  concurrency: string;
  graceMs: string;
  visibilityTimeout?: string;
  maxAttempts?: string;
  maintenanceInterval?: string;
  previewEvery?: string;
};

const int = (v: string | undefined, name: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new AppError('BAD_USER_INPUT', `--${name} must be a non-negative integer`);
  return n;
};

export function register(program: Command): void {
  program
    .command('worker')
    .description('run jobs from the queue on the model (the GPU worker process)')
    .option(
      '--model <dirs>',
      'model directory, comma-separated for several (default: HARMON_MODEL, else the demo model)',
    )
    .option(
      '--concurrency <n>',
      'jobs at once, or batches at once when WORKER_MAX_BATCH > 1 (a GPU worker runs 1)',
      '1',
    )
    .option(
      '--grace-ms <ms>',
      'on SIGTERM, how long the running job may take to finish before it is released',
      '25000',
    )
    .option('--visibility-timeout <s>', 'queue lease in seconds (re-delivery delay after a crash)')
    .option('--max-attempts <n>', 'deliveries before a job fails / is dead-lettered')
    .option('--maintenance-interval <s>', 'pg-boss: how often expired leases are detected')
    .option('--preview-every <n>', 'upload a preview image every N steps (0: none)')
    .action(async (opts: Opts) => {
      const config = loadConfig();
      let modelDirs = opts.model
        ? opts.model
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : config.modelDirs;
      if (modelDirs.length === 0) {
        // No model configured: the random-weight demo model, built on first use, said plainly.
        process.stderr.write(`${DEMO_NOTICE}\n`);
        modelDirs = [await ensureDemoModel()];
      }
      const cleanups: (() => Promise<void>)[] = [];
      const closeAll = async () => {
        for (const fn of cleanups.splice(0).reverse())
          await fn().catch((e: unknown) => logger.warn({ err: e }, 'worker cleanup failed'));
      };
      try {
        const db = await resolveDatabase(config, 'client');
        cleanups.push(db.stop);
        await migrate(db.url);
        // One application_name on all of this process's sessions (job-locks.ts: taking over from a
        // frozen worker ends them all, including a transaction it froze in).
        const url = workerSessionUrl(db.url);
        const prisma = createPrisma(url, { max: db.embedded ? 2 : 5 });
        cleanups.push(() => prisma.$disconnect());
        const s3 = await resolveS3(config, 'client');
        cleanups.push(s3.stop);
        const blobStore = createBlobStore(s3.s3);
        cleanups.push(async () => blobStore.close());
        const runner = await createEngineRunner(modelDirs, {
          previewEvery: int(opts.previewEvery, 'preview-every'),
          runtime: { executionProviders: config.executionProviders },
        });
        cleanups.push(() => runner.close());
        for (const e of runner.engines) logger.info(loadSummary(e.info), 'model loaded');

        const queueOptions = queueOptionsFromConfig(config, url);
        const policy = {
          ...queueOptions.policy,
          ...(opts.visibilityTimeout
            ? { visibilityTimeoutSeconds: int(opts.visibilityTimeout, 'visibility-timeout') }
            : {}),
          ...(opts.maxAttempts ? { maxAttempts: int(opts.maxAttempts, 'max-attempts') } : {}),
        };
        const maintenance = int(opts.maintenanceInterval, 'maintenance-interval');
        const service = await startWorkerService({
          prisma,
          databaseUrl: url,
          blobStore,
          runner,
          queue: {
            ...queueOptions,
            policy,
            ...(queueOptions.backend === 'postgres'
              ? { pollIntervalMs: 500, ...(maintenance ? { maintenanceIntervalSeconds: maintenance } : {}) }
              : {}),
          },
          concurrency: int(opts.concurrency, 'concurrency'),
          maxBatch: config.workerMaxBatch,
          maxImageBytes: config.maxUploadBytes,
        });
        // Signal handlers first, then the ready line: a supervisor may send SIGTERM as soon as it
        // reads that line, and a signal before the handlers exist kills the process mid-job.
        const stopped = new Promise<void>((resolve) => {
          const stop = (signal: string) => {
            logger.info({ signal }, 'worker stopping');
            // A second signal: hand the running job back at once.
            process.once(signal, () => void service.stop({ mode: 'release', timeoutMs: 2000 }));
            service
              .stop({ mode: 'finish', timeoutMs: int(opts.graceMs, 'grace-ms') })
              .catch((e: unknown) => logger.error({ err: e }, 'worker stop failed'))
              .finally(resolve);
          };
          process.once('SIGTERM', () => stop('SIGTERM'));
          process.once('SIGINT', () => stop('SIGINT'));
        });
        process.stdout.write(
          `harmon worker ready (pid ${process.pid}; models ${runner.models().join(', ')})\n`,
        );
        await stopped;
        process.stdout.write('harmon worker stopped\n');
      } finally {
        await closeAll();
      }
    });
}
