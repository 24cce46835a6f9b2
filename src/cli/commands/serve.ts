/** `harmon serve`: runs the service until SIGINT/SIGTERM, then shuts down cleanly. */
import type { Command } from 'commander';
import { apiSetup, type MountedApi } from '../../api/mount.ts';
import { loadConfig } from '../../config/config.ts';
import { ensureDemoModel } from '../../onnx/demo-model.ts';
import { startServer } from '../../server/server.ts';
import { AppError } from '../../shared/errors.ts';
import { logger } from '../../shared/logger.ts';
import { embeddedWorkerSetup } from '../embedded-worker.ts';

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the HTTP service (embedded database and storage unless configured)')
    .option('--port <port>', 'override PORT')
    .option('--no-worker', 'do not run the in-process worker (jobs wait for a `harmon worker`)')
    // Previews are what the web playground shows live; each costs one VAE decode.
    .option('--preview-every <n>', 'in-process worker: upload a preview image every N steps (0: none)', '4')
    .action(async (opts: { port?: string; worker: boolean; previewEvery: string }) => {
      const previewEvery = Number(opts.previewEvery);
      if (!Number.isInteger(previewEvery) || previewEvery < 0)
        throw new AppError('BAD_USER_INPUT', '--preview-every must be a non-negative integer');
      const config = loadConfig(opts.port === undefined ? process.env : { ...process.env, PORT: opts.port });
      // With no HARMON_MODEL the in-process worker serves the random-weight demo model.
      const modelDirs =
        config.modelDirs.length > 0 || !opts.worker ? config.modelDirs : [await ensureDemoModel()];
      let api: MountedApi | undefined;
      const setup = [apiSetup({ modelDirs }, (a) => (api = a))];
      if (opts.worker) setup.push(embeddedWorkerSetup(modelDirs, () => api, { previewEvery }));
      const server = await startServer(config, { setup });
      process.stdout.write(`harmon listening on ${server.url}\n`);
      await new Promise<void>((resolve) => {
        // Listeners stay registered for the whole shutdown: libraries built on signal-exit re-raise
        // the signal when they see no other listener left, which a `once` handler would cause.
        let stopping = false;
        const stop = (signal: string) => {
          // A second signal while closing forces the exit.
          if (stopping) process.exit(130);
          stopping = true;
          logger.info({ signal }, 'shutting down');
          server.close().then(resolve, (e: unknown) => {
            logger.error({ err: e }, 'shutdown failed');
            resolve();
          });
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
