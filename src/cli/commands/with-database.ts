/**
 * For CLI commands that need the database: resolves it like the server does (real Postgres, the
 * running server's embedded one, or PGlite opened just for this command), applies migrations so a
 * brand-new HARMON_HOME works, and always releases everything afterwards.
 */
import type { Config } from '../../config/config.ts';
import { resolveDatabase } from '../../embedded/resolve.ts';
import { createPrisma, type Prisma } from '../../storage/db.ts';
import { migrate } from '../../storage/migrate.ts';

export async function withDatabase<T>(
  config: Config,
  fn: (prisma: Prisma, url: string) => Promise<T>,
): Promise<T> {
  const db = await resolveDatabase(config, 'client');
  try {
    await migrate(db.url);
    const prisma = createPrisma(db.url, { max: 2 });
    try {
      return await fn(prisma, db.url);
    } finally {
      await prisma.$disconnect();
    }
  } finally {
    await db.stop();
  }
}
