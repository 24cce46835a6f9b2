/**
 * Embedded Postgres: PGlite with its data directory on disk, served over the Postgres wire
 * protocol on loopback by PgliteWireServer (pglite-server.ts), so Prisma, pg and pg-boss connect
 * exactly as they would to a real server. (pglite-socket interleaved the extended-protocol
 * messages of concurrent connections; see pglite-server.ts.)
 */
import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { AppError } from '../shared/errors.ts';
import { PgliteWireServer } from './pglite-server.ts';

export type EmbeddedDatabase = { url: string; port: number; stop(): Promise<void> };

/**
 * Room for Prisma's pool, the migrator, pg-boss and the event bus's LISTEN connection; more
 * would only queue longer, since PGlite runs one batch at a time.
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
  const server = new PgliteWireServer({
    db,
    host: '127.0.0.1',
    port: options.port ?? 0,
    maxConnections: EMBEDDED_MAX_CONNECTIONS,
  });
  let port: number;
  try {
    port = await server.start();
  } catch (cause) {
    await db.close();
    throw new AppError('DATABASE_ERROR', `cannot serve the embedded database: ${String(cause)}`, { cause });
  }
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
