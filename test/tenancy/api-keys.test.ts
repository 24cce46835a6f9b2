import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import { createApiKey, resolveApiKey, revokeApiKey } from '../../src/tenancy/api-keys.ts';
import { type FreshDatabase, freshDatabase } from '../helpers/pg.ts';

let db: FreshDatabase;
before(async () => {
  db = await freshDatabase();
});
after(() => db.drop());

test('createApiKey creates the tenant once and stores only a hash', async () => {
  const a = await createApiKey(db.prisma, 'acme');
  const b = await createApiKey(db.prisma, 'acme', ['jobs:read']);
  assert.equal(a.tenantCreated, true);
  assert.equal(b.tenantCreated, false);
  assert.equal(a.tenantId, b.tenantId);
  assert.match(a.key, /^hmn_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
  const rows = await db.prisma.apiKey.findMany();
  assert.equal(rows.length, 2);
  const secret = a.key.slice(`hmn_${a.prefix}_`.length);
  const row = rows.find((r) => r.prefix === a.prefix);
  assert.equal(row?.secretHash, createHash('sha256').update(secret).digest('hex'));
  for (const r of rows) {
    assert.ok(!JSON.stringify(r).includes(secret), 'raw secret must not be stored');
  }
});

test('resolveApiKey accepts the key and refuses tampered, unknown and revoked keys', async () => {
  const k = await createApiKey(db.prisma, 'globex', ['jobs:read']);
  const ok = await resolveApiKey(db.prisma, k.key);
  assert.deepEqual(ok, { tenantId: k.tenantId, keyId: k.keyId, scopes: ['jobs:read'] });
  assert.ok((await db.prisma.apiKey.findUniqueOrThrow({ where: { id: k.keyId } })).lastUsedAt);
  const last = k.key.at(-1) === 'A' ? 'B' : 'A';
  assert.equal(await resolveApiKey(db.prisma, k.key.slice(0, -1) + last), null);
  assert.equal(await resolveApiKey(db.prisma, k.key.replace(k.prefix, '000000000000')), null);
  assert.equal(await resolveApiKey(db.prisma, 'not a key'), null);
  await revokeApiKey(db.prisma, k.prefix);
  assert.equal(await resolveApiKey(db.prisma, k.key), null);
  await assert.rejects(revokeApiKey(db.prisma, k.prefix), /no active API key/);
});

test('bad tenant names and scopes are refused', async () => {
  await assert.rejects(
    createApiKey(db.prisma, '../x'),
    (e: { code?: string }) => e.code === 'BAD_USER_INPUT',
  );
  await assert.rejects(createApiKey(db.prisma, 'ok', []), /scopes/);
});
