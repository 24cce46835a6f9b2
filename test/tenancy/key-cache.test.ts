// The in-process API-key cache: hits skip the database, a cached key keeps its own tenant, a
// revoke in this process is immediate, a revoke elsewhere takes effect after the TTL.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createApiKey, resolvePrincipal, revokeApiKey } from '../../src/tenancy/api-keys.ts';
import { ApiKeyCache, apiKeyCache, KEY_CACHE_TTL_MS } from '../../src/tenancy/key-cache.ts';
import { type FreshDatabase, freshDatabase } from '../helpers/pg.ts';

let db: FreshDatabase;
before(async () => {
  db = await freshDatabase();
});
after(() => db.drop());

/** Counts key lookups that reach the database. */
function countingPrisma() {
  let lookups = 0;
  const prisma = new Proxy(db.prisma, {
    get(target, prop, receiver) {
      if (prop !== 'apiKey') return Reflect.get(target, prop, receiver);
      const apiKey = target.apiKey;
      return new Proxy(apiKey, {
        get(t, p, r) {
          if (p !== 'findUnique') return Reflect.get(t, p, r);
          return (...args: Parameters<typeof apiKey.findUnique>) => {
            lookups++;
            return apiKey.findUnique(...args);
          };
        },
      });
    },
  });
  return { prisma, lookups: () => lookups };
}

test('a cached key is served without a database lookup and keeps its own tenant and rate', async () => {
  const a = await createApiKey(db.prisma, 'cache-a', ['jobs:read']);
  const b = await createApiKey(db.prisma, 'cache-b');
  await db.prisma.tenant.update({ where: { id: b.tenantId }, data: { ratePerMinute: 1234 } });
  const cache = new ApiKeyCache();
  const c = countingPrisma();
  for (let i = 0; i < 5; i++) {
    const pa = await resolvePrincipal(c.prisma, a.key, cache);
    const pb = await resolvePrincipal(c.prisma, b.key, cache);
    assert.deepEqual(pa, { tenantId: a.tenantId, keyId: a.keyId, scopes: ['jobs:read'], ratePerMinute: 60 });
    assert.deepEqual(pb, { tenantId: b.tenantId, keyId: b.keyId, scopes: ['*'], ratePerMinute: 1234 });
  }
  assert.equal(c.lookups(), 2, 'one lookup per key, then cache hits');
  assert.equal(cache.size, 2);
});

test('a wrong secret with a cached key’s prefix misses the cache and is refused', async () => {
  const k = await createApiKey(db.prisma, 'cache-tamper');
  const cache = new ApiKeyCache();
  assert.ok(await resolvePrincipal(db.prisma, k.key, cache));
  const last = k.key.at(-1) === 'A' ? 'B' : 'A';
  assert.equal(await resolvePrincipal(db.prisma, k.key.slice(0, -1) + last, cache), null);
  assert.equal(await resolvePrincipal(db.prisma, 'hmn_nonsense', cache), null);
  assert.equal(cache.size, 1, 'refusals are not cached');
});

test('revokeApiKey in this process refuses a cached key at once', async () => {
  const k = await createApiKey(db.prisma, 'cache-revoke');
  const other = await createApiKey(db.prisma, 'cache-revoke-elsewhere');
  assert.ok(await resolvePrincipal(db.prisma, k.key));
  assert.ok(await resolvePrincipal(db.prisma, other.key));
  // Control: a revoke that bypasses revokeApiKey is not seen while the entry lives, so the
  // immediate refusal below is the invalidation's doing.
  await db.prisma.apiKey.update({ where: { id: other.keyId }, data: { revokedAt: new Date() } });
  assert.ok(await resolvePrincipal(db.prisma, other.key));
  await revokeApiKey(db.prisma, k.prefix);
  assert.equal(await resolvePrincipal(db.prisma, k.key), null);
  apiKeyCache.invalidatePrefix(other.prefix);
  assert.equal(await resolvePrincipal(db.prisma, other.key), null);
});

test('a revoke by another process takes effect once the TTL has passed', async () => {
  let now = 1_000_000;
  const cache = new ApiKeyCache({ now: () => now });
  const k = await createApiKey(db.prisma, 'cache-ttl');
  assert.ok(await resolvePrincipal(db.prisma, k.key, cache));
  // Another process revokes: nothing tells this cache.
  await db.prisma.apiKey.update({ where: { id: k.keyId }, data: { revokedAt: new Date() } });
  now += KEY_CACHE_TTL_MS - 1;
  assert.ok(await resolvePrincipal(db.prisma, k.key, cache), 'still inside the documented delay');
  now += 1;
  assert.equal(await resolvePrincipal(db.prisma, k.key, cache), null);
});

test('lastUsedAt is written on a lookup, not on cache hits', async () => {
  const k = await createApiKey(db.prisma, 'cache-used');
  const cache = new ApiKeyCache();
  await resolvePrincipal(db.prisma, k.key, cache);
  const first = (await db.prisma.apiKey.findUniqueOrThrow({ where: { id: k.keyId } })).lastUsedAt;
  assert.ok(first);
  await db.prisma.apiKey.update({ where: { id: k.keyId }, data: { lastUsedAt: null } });
  await resolvePrincipal(db.prisma, k.key, cache);
  const row = await db.prisma.apiKey.findUniqueOrThrow({ where: { id: k.keyId } });
  assert.equal(row.lastUsedAt, null);
});

test('the cache is bounded and evicts the oldest entry', () => {
  const cache = new ApiKeyCache({ maxEntries: 2 });
  const p = (t: string) => ({ tenantId: t, keyId: t, scopes: ['*'], ratePerMinute: 1 });
  cache.set('a', 'pa', p('a'));
  cache.set('b', 'pb', p('b'));
  cache.set('c', 'pc', p('c'));
  assert.equal(cache.get('a'), undefined);
  assert.equal(cache.get('c')?.tenantId, 'c');
  cache.invalidateTenant('c');
  assert.equal(cache.get('c'), undefined);
  assert.equal(cache.size, 1);
});
