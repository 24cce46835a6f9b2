/**
 * The in-process worker of `harmon serve` (embedded mode): after the API is mounted, start the
 * engines (each in its own worker thread, so inference never blocks the HTTP event loop) and the
 * worker service on the API's own queue instance. On close it releases a running job back to
 * the queue, then stops the engines.
 */
import type { MountedApi } from '../api/mount.ts';
import { createEngineRunner } from '../jobs/engine-runner.ts';
import { startWorkerService } from '../jobs/service.ts';
import type { SetupHook } from '../server/server.ts';
import { loadSummary } from './load-summary.ts';

export function embeddedWorkerSetup(
  modelDirs: string[],
  api: () => MountedApi | undefined,
  options: { previewEvery?: number } = {},
): SetupHook {
  return async (ctx) => {
    const mounted = api();
    if (!mounted) throw new Error('the API must be mounted before the embedded worker');
    const runner = await createEngineRunner(modelDirs, {
      previewEvery: options.previewEvery,
      runtime: { executionProviders: ctx.config.executionProviders },
    });
    ctx.onClose(() => runner.close());
    for (const e of runner.engines) ctx.log.info(loadSummary(e.info), 'model loaded');
    const service = await startWorkerService({
      prisma: ctx.prisma,
      databaseUrl: ctx.databaseUrl,
      blobStore: ctx.blobStore,
      runner,
      queue: mounted.queue,
      log: ctx.log,
      maxBatch: ctx.config.workerMaxBatch,
      maxImageBytes: ctx.config.maxUploadBytes,
    });
    // Registered after the runner, so it runs before it on close: release the job, then stop engines.
    ctx.onClose(() => service.stop({ mode: 'release' }));
    ctx.log.info({ models: runner.models() }, 'in-process worker started');
  };
}
