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

/**
 * The schema a connection string names: Prisma's `?schema=x`, else the first entry of
 * `?options=-c search_path=x`. Undefined means public.
 */
export function schemaFromUrl(databaseUrl: string): string | undefined {
  if (!URL.canParse(databaseUrl)) return undefined;
  const params = new URL(databaseUrl).searchParams;
  const explicit = params.get('schema');
  if (explicit) return explicit;
  const m = /search_path\s*=\s*"?([^",\s]+)/.exec(params.get('options') ?? '');
  return m?.[1];
}

export function createPrisma(databaseUrl: string, options: CreatePrismaOptions = {}): PrismaClient {
  // Prisma qualifies every table with the adapter's schema ("public" by default) and ignores the
  // session search_path, so a schema named in the URL must be passed on explicitly.
  const { schema = schemaFromUrl(databaseUrl), max = 10 } = options;
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
