/** `harmon serve`: runs the service until SIGINT/SIGTERM, then shuts down cleanly. */
import type { Command } from 'commander';
import { apiSetup } from '../../api/mount.ts';
import { loadConfig } from '../../config/config.ts';
import { startServer } from '../../server/server.ts';
import { logger } from '../../shared/logger.ts';

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the HTTP service (embedded database and storage unless configured)')
    .option('--port <port>', 'override PORT')
    .action(async (opts: { port?: string }) => {
      const config = loadConfig(opts.port === undefined ? process.env : { ...process.env, PORT: opts.port });
      const server = await startServer(config, { setup: [apiSetup()] });
      process.stdout.write(`harmon listening on ${server.url}\n`);
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          logger.info({ signal }, 'shutting down');
          // A second signal while closing forces the exit.
          process.once(signal, () => process.exit(130));
          server.close().then(resolve, (e: unknown) => {
            logger.error({ err: e }, 'shutdown failed');
            resolve();
          });
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
    });
}
