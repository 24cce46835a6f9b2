/**
 * Real-Postgres test database: a fresh schema on 127.0.0.1:5432 (override the server with
 * TEST_DATABASE_URL) with every migration applied.
 *
 *   const db = await freshDatabase();
 *   after(() => db.drop());
 *   await db.prisma.tenant.create({ data: { name: 'acme' } });
 *
 * `url` carries `schema=<schema>` (read by createPrisma/migrate) and `options=-c search_path=<schema>`
 * (so plain pg clients and pg-boss see the fresh schema's tables unqualified).
 */
import { randomBytes } from 'node:crypto';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from '../../src/generated/prisma/client.ts';
import { createPrisma, type Prisma } from '../../src/storage/db.ts';
import { migrate } from '../../src/storage/migrate.ts';

export const TEST_DATABASE_URL =
  process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export type FreshDatabase = {
  /** Connection string scoped to the fresh schema. */
  url: string;
  prisma: Prisma;
  schema: string;
  /** Disconnects Prisma and drops the schema. */
  drop(): Promise<void>;
};

export async function freshDatabase(options: { migrate?: boolean } = {}): Promise<FreshDatabase> {
  const schema = `test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const u = new URL(TEST_DATABASE_URL);
  u.searchParams.set('schema', schema);
  u.searchParams.set('options', `-c search_path=${schema}`);
  const url = u.toString();
  if (options.migrate !== false) await migrate(TEST_DATABASE_URL, { schema });
  else await exec(`CREATE SCHEMA "${schema}"`);
  const prisma = createPrisma(TEST_DATABASE_URL, { schema, max: 4 });
  return {
    url,
    prisma,
    schema,
    async drop() {
      await prisma.$disconnect().catch(() => {});
      await exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      // The pg-boss queue of a schema lives in `<schema>_boss` (src/jobs/queue/from-config.ts).
      await exec(`DROP SCHEMA IF EXISTS "${schema}_boss" CASCADE`);
    },
  };
}

/**
 * Drops a schema this test created next to its fresh one (e.g. pg-boss' `<schema>_boss`), which
 * `drop()` does not know about.
 */
export function dropSchema(schema: string): Promise<void> {
  return exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

async function exec(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

/**
 * A Prisma client on `db`'s schema that appends every SQL statement it sends (whitespace
 * collapsed) to `log`: for tests that count round trips. createPrisma does not log queries.
 */
export function queryLoggingPrisma(db: FreshDatabase, log: string[]): PrismaClient {
  const adapter = new PrismaPg(
    { connectionString: TEST_DATABASE_URL, max: 2, options: `-c search_path="${db.schema}"` },
    { schema: db.schema },
  );
  const client = new PrismaClient({ adapter, log: [{ emit: 'event', level: 'query' }] });
  client.$on('query', (e) => log.push(e.query.replace(/\s+/g, ' ').trim()));
  return client;
}
