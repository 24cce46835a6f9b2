#!/usr/bin/env node
// Generates migration SQL offline from prisma/schema.prisma with Prisma 6.19's WASM schema engine
// (Prisma 7's `migrate diff` needs the native engine, which cannot be downloaded here, and
// silently prints nothing without it).
//
// Usage: node scripts/generate-migration-sql.mjs <name>
// Writes prisma/migrations/<timestamp>_<name>/migration.sql plus schema.snapshot.prisma, the
// datamodel that migration leads to. The next run diffs the newest snapshot against the current
// schema (the adapter-based Prisma 6 config cannot diff against a live database: "--from-schema-
// datasource ... not supported"). The engine still opens a connection: DATABASE_URL, default
// postgres://postgres@127.0.0.1:5432/postgres.
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const name = (process.argv[2] ?? '').replace(/[^a-z0-9_]/gi, '_');
if (!name) {
  console.error('usage: node scripts/generate-migration-sql.mjs <migration_name>');
  process.exit(2);
}
const root = resolve(import.meta.dirname, '..');
const dbUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const migrationsDir = join(root, 'prisma/migrations');
mkdirSync(migrationsDir, { recursive: true });
const latest = readdirSync(migrationsDir, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort()
  .at(-1);
const currentSchema = readFileSync(join(root, 'prisma/schema.prisma'), 'utf8');

const work = mkdtempSync(join(tmpdir(), 'harmon-migsql-'));
try {
  // Prisma 6 wants a URL in the datasource block and chokes on the Prisma 7 generator; neither
  // matters for a diff, so patched copies go into a temp dir next to a Prisma 6 config.
  const patch = (s) =>
    s
      .replace(/generator client \{[^}]*\}/, '')
      .replace(
        /datasource db \{[^}]*\}/,
        'datasource db {\n  provider = "postgresql"\n  url = env("DATABASE_URL")\n}',
      );
  writeFileSync(join(work, 'to.prisma'), patch(currentSchema));
  let from = ['--from-empty'];
  if (latest) {
    const snap = join(migrationsDir, latest, 'schema.snapshot.prisma');
    if (!existsSync(snap)) throw new Error(`${snap} is missing; cannot diff against ${latest}`);
    writeFileSync(join(work, 'from.prisma'), patch(readFileSync(snap, 'utf8')));
    from = ['--from-schema-datamodel', join(work, 'from.prisma')];
  }
  const fakeEngine = join(work, 'libquery_engine.so.node');
  writeFileSync(fakeEngine, '');
  writeFileSync(
    join(work, 'prisma.config.mjs'),
    `import { defineConfig } from ${JSON.stringify(join(root, 'node_modules/prisma6/config.js'))};
import { PrismaPg } from ${JSON.stringify(join(root, 'node_modules/@prisma/adapter-pg-6/dist/index.mjs'))};
// The adapter selects the WASM schema engine; it connects once but reads no tables.
export default defineConfig({
  schema: ${JSON.stringify(join(work, 'to.prisma'))},
  experimental: { adapter: true },
  engine: 'js',
  adapter: async () => new PrismaPg({ connectionString: ${JSON.stringify(dbUrl)} }),
});
`,
  );
  const r = spawnSync(
    process.execPath,
    [
      join(root, 'node_modules/prisma6/build/index.js'),
      'migrate',
      'diff',
      ...from,
      '--to-schema-datamodel',
      join(work, 'to.prisma'),
      '--script',
      '--config',
      join(work, 'prisma.config.mjs'),
    ],
    {
      encoding: 'utf8',
      env: {
        ...process.env,
        DATABASE_URL: dbUrl,
        // Prisma 6 downloads a query engine on start unless one is named; a diff never loads it.
        PRISMA_QUERY_ENGINE_LIBRARY: fakeEngine,
        PRISMA_HIDE_UPDATE_MESSAGE: '1',
        CHECKPOINT_DISABLE: '1',
      },
    },
  );
  if (r.status !== 0) {
    console.error(r.stderr || r.stdout);
    process.exit(r.status ?? 1);
  }
  // Migrations must be schema-agnostic: tests apply them into a fresh schema via search_path.
  const sql = r.stdout.replace(/-- CreateSchema\nCREATE SCHEMA IF NOT EXISTS "public";\n\n?/, '');
  if (sql.trim() === '') {
    console.error('generate-migration-sql: the schema engine printed nothing (engine failure?)');
    process.exit(1);
  }
  const statements = sql.split('\n').filter((l) => l.trim() && !l.trim().startsWith('--'));
  if (statements.length === 0) {
    console.log('generate-migration-sql: schema and migrations already match, nothing to write');
    process.exit(0);
  }
  const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
  const dir = join(migrationsDir, `${stamp}_${name}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'migration.sql'), sql);
  writeFileSync(join(dir, 'schema.snapshot.prisma'), currentSchema);
  console.log(`wrote ${dir}/migration.sql (${statements.length} lines of SQL)`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
