/**
 * Embedded Postgres: PGlite with its data directory on disk, served over the Postgres wire
 * protocol by pglite-socket on loopback, so Prisma, pg and pg-boss connect exactly as they would
 * to a real server.
 */
import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { AppError } from '../shared/errors.ts';

export type EmbeddedDatabase = { url: string; port: number; stop(): Promise<void> };

/**
 * The socket server's default of 1 connection makes parallel pool clients fail with
 * "Connection terminated unexpectedly"; 10 leaves room for Prisma, the migrator and a queue.
 */
export const EMBEDDED_MAX_CONNECTIONS = 10;

export async function startEmbeddedDatabase(
  dataDir: string,
  options: { port?: number } = {},
): Promise<EmbeddedDatabase> {
  mkdirSync(dataDir, { recursive: true });
  let db: PGlite;
  try {
    db = await PGlite.create(dataDir);
  } catch (cause) {
    throw new AppError(
      'DATABASE_ERROR',
      `cannot open the embedded database in ${dataDir} (is another process using it?)`,
      { cause },
    );
  }
  const server = new PGLiteSocketServer({
    db,
    host: '127.0.0.1',
    port: options.port ?? 0,
    maxConnections: EMBEDDED_MAX_CONNECTIONS,
  });
  try {
    await server.start();
  } catch (cause) {
    await db.close();
    throw new AppError('DATABASE_ERROR', `cannot serve the embedded database: ${String(cause)}`, { cause });
  }
  const port = Number(server.getServerConn().split(':').at(-1));
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async stop() {
      await server.stop();
      // Closing flushes PGlite's files; skipping it risks a data dir that needs recovery.
      await db.close();
    },
  };
}
