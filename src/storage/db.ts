/**
 * Prisma client factory. Every database access in the platform goes through a client made here,
 * over @prisma/adapter-pg (Prisma 7 has no bundled query engine).
 */
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../generated/prisma/client.ts';

export type Prisma = PrismaClient;
export { PrismaClient };

export type CreatePrismaOptions = {
  /** Postgres schema holding the tables (tests use a fresh one per file). Default: public. */
  schema?: string;
  /** Pool size. Keep it small on PGlite: its socket server accepts few connections. */
  max?: number;
};

export function createPrisma(databaseUrl: string, options: CreatePrismaOptions = {}): PrismaClient {
  const { schema, max = 10 } = options;
  const adapter = new PrismaPg(
    {
      connectionString: databaseUrl,
      max,
      // Raw SQL ($queryRaw) is not schema-qualified by Prisma, so the session search_path must
      // point at the schema too.
      ...(schema ? { options: `-c search_path="${schema}"` } : {}),
    },
    schema ? { schema } : undefined,
  );
  return new PrismaClient({ adapter });
}
