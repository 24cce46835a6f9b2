import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { MIGRATIONS_DIR, migrate, readMigrations } from '../../src/storage/migrate.ts';
import { type FreshDatabase, freshDatabase, TEST_DATABASE_URL } from '../helpers/pg.ts';

let db: FreshDatabase;
before(async () => {
  db = await freshDatabase({ migrate: false });
});
after(() => db.drop());

async function tables(url: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ t: string }>(
      'SELECT table_name AS t FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1',
    );
    return r.rows.map((x) => x.t);
  } finally {
    await c.end();
  }
}

test('migrations apply from zero, then are a no-op', async () => {
  assert.deepEqual(await tables(db.url), []);
  const all = readMigrations().map((m) => m.name);
  assert.ok(all.length >= 1);
  const first = await migrate(TEST_DATABASE_URL, { schema: db.schema });
  assert.deepEqual(first.applied, all);
  // Later migrations may add tables; the core ones must all exist.
  const created = await tables(db.url);
  for (const t of [
    'ApiKey',
    'Asset',
    'Job',
    'JobEvent',
    'Tenant',
    'Upload',
    'UsageRecord',
    'WebhookDelivery',
    '_harmon_migrations',
  ]) {
    assert.ok(created.includes(t), `missing table ${t}`);
  }
  const second = await migrate(TEST_DATABASE_URL, { schema: db.schema });
  assert.deepEqual(second.applied, []);
  assert.deepEqual(second.skipped, all);
});

test('an edited migration is refused; a new one is applied', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'harmon-mig-'));
  try {
    cpSync(MIGRATIONS_DIR, dir, { recursive: true });
    const [firstName] = readMigrations(dir).map((m) => m.name);
    writeFileSync(join(dir, firstName, 'migration.sql'), '-- edited\nSELECT 1;');
    await assert.rejects(migrate(TEST_DATABASE_URL, { schema: db.schema, dir }), /checksum changed/);
    cpSync(join(MIGRATIONS_DIR, firstName), join(dir, firstName), { recursive: true });
    const extra = join(dir, '99990101000000_extra');
    cpSync(join(MIGRATIONS_DIR, firstName), extra, { recursive: true });
    writeFileSync(join(extra, 'migration.sql'), 'CREATE TABLE "Extra" (id int);');
    const r = await migrate(TEST_DATABASE_URL, { schema: db.schema, dir });
    assert.deepEqual(r.applied, ['99990101000000_extra']);
    assert.ok((await tables(db.url)).includes('Extra'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failing migration rolls back entirely', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'harmon-mig-'));
  try {
    cpSync(MIGRATIONS_DIR, dir, { recursive: true });
    const bad = join(dir, '99990102000000_bad');
    cpSync(join(dir, readMigrations(dir)[0].name), bad, { recursive: true });
    writeFileSync(join(bad, 'migration.sql'), 'CREATE TABLE "Half" (id int); SELECT nope FROM nowhere;');
    await assert.rejects(migrate(TEST_DATABASE_URL, { schema: db.schema, dir }), /99990102000000_bad failed/);
    assert.ok(!(await tables(db.url)).includes('Half'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
