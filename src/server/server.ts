/**
 * Boots the service: config → database (+ migrations) → blob store → HTTP. With no DATABASE_URL /
 * S3 settings it owns embedded PGlite and s3rver under HARMON_HOME and advertises them in
 * server.json for CLI commands. Later features plug in through `setup` hooks (mount routes, use
 * the http.Server for WebSockets, register cleanup) before the port opens.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config/config.ts';
import { type ResolvedDatabase, type ResolvedS3, resolveDatabase, resolveS3 } from '../embedded/resolve.ts';
import { removeServerInfo, writeServerInfo } from '../embedded/server-info.ts';
import { AppError } from '../shared/errors.ts';
import { type Logger, logger as rootLogger } from '../shared/logger.ts';
import { type BlobStore, createBlobStore } from '../storage/blob-store.ts';
import { createPrisma, type Prisma } from '../storage/db.ts';
import { migrate } from '../storage/migrate.ts';
import { type App, createApp } from './app.ts';
import { answerClientErrors } from './client-errors.ts';
import { healthHandler } from './health.ts';
import { staticWebHandler } from './static-web.ts';

export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

export type ServerContext = {
  config: Config;
  prisma: Prisma;
  blobStore: BlobStore;
  /** Connection string of the database in use (embedded or real), e.g. for a queue library. */
  databaseUrl: string;
  app: App;
  httpServer: Server;
  log: Logger;
  /** Registers cleanup run on close(), in reverse order of registration. */
  onClose(fn: () => Promise<void> | void): void;
};

export type SetupHook = (ctx: ServerContext) => Promise<void> | void;
export type ServerHandle = ServerContext & { port: number; url: string; close(): Promise<void> };

export async function startServer(
  config: Config,
  options: { setup?: SetupHook[]; log?: Logger } = {},
): Promise<ServerHandle> {
  const log = options.log ?? rootLogger;
  const cleanups: (() => Promise<void> | void)[] = [];
  const closeAll = async () => {
    for (const fn of cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (e) {
        log.warn({ err: e }, 'error during shutdown');
      }
    }
  };
  try {
    const embedded = !config.databaseUrl || !config.s3;
    if (embedded) mkdirSync(config.harmonHome, { recursive: true });

    const db: ResolvedDatabase = await resolveDatabase(config, 'server');
    cleanups.push(db.stop);
    const m = await migrate(db.url);
    if (m.applied.length > 0) log.info({ applied: m.applied }, 'migrations applied');
    // PGlite serves one query at a time; a big pool only queues on its socket.
    const prisma = createPrisma(db.url, { max: db.embedded ? 4 : 10 });
    cleanups.push(() => prisma.$disconnect());

    const s3: ResolvedS3 = await resolveS3(config, 'server');
    cleanups.push(s3.stop);
    const blobStore = createBlobStore(s3.s3);
    cleanups.push(() => blobStore.close());
    await blobStore.ensureBucket();

    const app = createApp(log);
    const httpServer = createServer((req, res) => void app.handle(req, res));
    answerClientErrors(httpServer);
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          httpServer.close(() => resolve());
          httpServer.closeAllConnections();
        }),
    );
    app.mount(
      '/healthz',
      healthHandler(
        {
          database: async () => {
            await prisma.$queryRaw`SELECT 1`;
          },
          storage: () => blobStore.ping(),
        },
        VERSION,
      ),
    );
    // The playground SPA; the longest-prefix router leaves '/' as the fallback for other paths.
    app.mount('/', staticWebHandler());
    const ctx: ServerContext = {
      config,
      prisma,
      blobStore,
      databaseUrl: db.url,
      app,
      httpServer,
      log,
      onClose: (fn) => cleanups.push(fn),
    };
    for (const hook of options.setup ?? []) await hook(ctx);

    await new Promise<void>((resolve, reject) => {
      httpServer.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          e.code === 'EADDRINUSE'
            ? new AppError('BAD_CONFIG', `PORT ${config.port} is already in use on ${config.host}`, {
                cause: e,
              })
            : e,
        ),
      );
      httpServer.listen(config.port, config.host, () => resolve());
    });
    const port = (httpServer.address() as AddressInfo).port;
    if (db.embedded || s3.embedded) {
      writeServerInfo(config.harmonHome, {
        pid: process.pid,
        dbPort: db.port,
        s3Port: s3.port,
        httpPort: port,
        startedAt: new Date().toISOString(),
      });
      cleanups.push(() => removeServerInfo(config.harmonHome));
    }
    const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    log.info(
      {
        url,
        database: db.embedded ? 'embedded' : 'external',
        storage: s3.embedded ? 'embedded' : 'external',
      },
      'harmon server listening',
    );
    let closing: Promise<void> | undefined;
    return { ...ctx, port, url, close: () => (closing ??= closeAll()) };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
