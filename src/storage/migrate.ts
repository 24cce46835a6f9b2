/**
 * Applies prisma/migrations/<timestamp>_<name>/migration.sql in name order. Prisma's own
 * `migrate deploy` needs the native schema engine (not downloadable here), so this small applier
 * records what it applied in `_harmon_migrations` and refuses an edited migration (changed
 * checksum) instead of silently drifting.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { AppError } from '../shared/errors.ts';
import { schemaFromUrl } from './db.ts';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../prisma/migrations', import.meta.url));
// Arbitrary constant; serialises concurrent migrators (two servers starting at once).
const LOCK_KEY = 7_346_120_011;

export type Migration = { name: string; sql: string; checksum: string };
export type MigrateOptions = { schema?: string; dir?: string };
export type MigrateResult = { applied: string[]; skipped: string[] };

export function readMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  if (!existsSync(dir)) throw new AppError('DATABASE_ERROR', `migrations folder ${dir} does not exist`);
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(dir, d.name, 'migration.sql')))
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(join(dir, name, 'migration.sql'), 'utf8');
      return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    });
}

/** Applies every pending migration in one transaction; a no-op when all are applied. */
export async function migrate(databaseUrl: string, options: MigrateOptions = {}): Promise<MigrateResult> {
  const migrations = readMigrations(options.dir);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect().catch((cause: unknown) => {
    throw new AppError('DATABASE_ERROR', `cannot connect to the database to migrate: ${String(cause)}`, {
      cause,
    });
  });
  // Same schema Prisma will use for this URL (`?schema=` or `options=-c search_path=`).
  const schema = options.schema ?? schemaFromUrl(databaseUrl);
  const q = schema === undefined ? undefined : `"${schema.replaceAll('"', '""')}"`;
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
    if (q) {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${q}`);
      // Unqualified names in migration.sql land in this schema.
      await client.query(`SET LOCAL search_path TO ${q}`);
    }
    await client.query(
      `CREATE TABLE IF NOT EXISTS _harmon_migrations (
         name text PRIMARY KEY, checksum text NOT NULL, "appliedAt" timestamptz NOT NULL DEFAULT now())`,
    );
    const { rows } = await client.query<{ name: string; checksum: string }>(
      'SELECT name, checksum FROM _harmon_migrations',
    );
    const done = new Map(rows.map((r) => [r.name, r.checksum]));
    const applied: string[] = [];
    const skipped: string[] = [];
    for (const m of migrations) {
      const prev = done.get(m.name);
      if (prev !== undefined) {
        if (prev !== m.checksum) {
          throw new AppError(
            'DATABASE_ERROR',
            `migration ${m.name} was edited after it was applied (checksum changed); add a new migration instead`,
            { details: { migration: m.name } },
          );
        }
        skipped.push(m.name);
        continue;
      }
      try {
        await client.query(m.sql);
      } catch (cause) {
        throw new AppError('DATABASE_ERROR', `migration ${m.name} failed: ${String(cause)}`, { cause });
      }
      await client.query('INSERT INTO _harmon_migrations (name, checksum) VALUES ($1, $2)', [
        m.name,
        m.checksum,
      ]);
      applied.push(m.name);
    }
    await client.query('COMMIT');
    return { applied, skipped };
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  } finally {
    await client.end().catch(() => {});
  }
}
