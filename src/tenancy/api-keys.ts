/**
 * API keys: `hmn_<prefix>_<secret>`. The 12-hex-char prefix is a public lookup id (unique
 * column); only sha256(secret) is stored, so a database leak does not leak usable keys. The
 * secret has 256 bits of entropy, which is why a plain (unsalted, fast) hash is enough.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AppError } from '../shared/errors.ts';
import type { Prisma } from '../storage/db.ts';
import { type ApiKeyCache, apiKeyCache, type KeyPrincipal } from './key-cache.ts';

const KEY_PATTERN = /^hmn_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;
/** Full access. Finer scopes (e.g. `jobs:read`) are checked by the API layer. */
export const DEFAULT_SCOPES = ['*'];
/** Skip the lastUsedAt write when it was refreshed this recently (saves a write per request). */
const LAST_USED_RESOLUTION_MS = 60_000;

export type CreatedApiKey = {
  key: string;
  keyId: string;
  prefix: string;
  tenantId: string;
  tenantCreated: boolean;
};
export type ResolvedApiKey = { tenantId: string; keyId: string; scopes: string[] };

const hashSecret = (secret: string) => createHash('sha256').update(secret).digest('hex');

/** Creates the tenant if it does not exist, then a new key. The raw key is returned only here. */
export async function createApiKey(
  prisma: Prisma,
  tenantName: string,
  scopes: string[] = DEFAULT_SCOPES,
): Promise<CreatedApiKey> {
  const name = tenantName.trim();
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name)) {
    throw new AppError(
      'BAD_USER_INPUT',
      `tenant name "${tenantName}" must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
  if (scopes.length === 0 || scopes.some((s) => !/^[a-z*][a-z:*_-]*$/.test(s))) {
    throw new AppError(
      'BAD_USER_INPUT',
      `scopes must be non-empty words like "jobs:read" or "*", got ${JSON.stringify(scopes)}`,
    );
  }
  const existing = await prisma.tenant.findUnique({ where: { name } });
  const tenant = existing ?? (await prisma.tenant.upsert({ where: { name }, create: { name }, update: {} }));
  const prefix = randomBytes(6).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const row = await prisma.apiKey.create({
    data: { tenantId: tenant.id, prefix, secretHash: hashSecret(secret), scopes },
  });
  return {
    key: `hmn_${prefix}_${secret}`,
    keyId: row.id,
    prefix,
    tenantId: tenant.id,
    tenantCreated: !existing,
  };
}

/** The key's tenant and scopes, or null for a malformed, unknown, wrong or revoked key. */
export async function resolveApiKey(prisma: Prisma, rawKey: string): Promise<ResolvedApiKey | null> {
  const p = await lookupKey(prisma, rawKey);
  return p && { tenantId: p.tenantId, keyId: p.keyId, scopes: p.scopes };
}

/**
 * `resolveApiKey` plus the tenant's request rate, served from the in-process cache when this
 * exact key was verified less than KEY_CACHE_TTL_MS ago (see key-cache.ts for the revocation
 * delay this implies for other processes). One query on a miss: key and tenant joined.
 */
export async function resolvePrincipal(
  prisma: Prisma,
  rawKey: string,
  cache: ApiKeyCache = apiKeyCache,
): Promise<KeyPrincipal | null> {
  const parsed = parseKey(rawKey);
  if (!parsed) return null;
  const cacheKey = `${parsed.prefix}:${parsed.hash}`;
  const hit = cache.get(cacheKey);
  if (hit) return hit;
  const p = await lookupKey(prisma, rawKey);
  if (p) cache.set(cacheKey, parsed.prefix, p);
  return p;
}

/**
 * The principal of `rawKey` only when this process verified it within the TTL; never asks the
 * database (used while a client address is throttled for failed authentication).
 */
export function cachedPrincipal(rawKey: string, cache: ApiKeyCache = apiKeyCache): KeyPrincipal | null {
  const parsed = parseKey(rawKey);
  return (parsed && cache.get(`${parsed.prefix}:${parsed.hash}`)) ?? null;
}

function parseKey(rawKey: string): { prefix: string; hash: string } | null {
  const m = KEY_PATTERN.exec(rawKey.trim());
  if (!m) return null;
  return { prefix: m[1], hash: hashSecret(m[2]) };
}

async function lookupKey(prisma: Prisma, rawKey: string): Promise<KeyPrincipal | null> {
  const parsed = parseKey(rawKey);
  if (!parsed) return null;
  const row = await prisma.apiKey.findUnique({
    where: { prefix: parsed.prefix },
    include: { tenant: { select: { ratePerMinute: true } } },
  });
  const given = Buffer.from(parsed.hash, 'hex');
  // Compare even when the prefix is unknown so response time does not reveal which prefixes exist.
  const stored = Buffer.from(row?.secretHash ?? '0'.repeat(64), 'hex');
  const match = stored.length === given.length && timingSafeEqual(stored, given);
  if (!row || !match || row.revokedAt) return null;
  // With the cache in front, a busy key comes here about once per TTL, so lastUsedAt is accurate
  // to about TTL + LAST_USED_RESOLUTION_MS.
  if (!row.lastUsedAt || Date.now() - row.lastUsedAt.getTime() > LAST_USED_RESOLUTION_MS) {
    await prisma.apiKey.update({ where: { id: row.id }, data: { lastUsedAt: new Date() } });
  }
  return {
    tenantId: row.tenantId,
    keyId: row.id,
    scopes: row.scopes,
    ratePerMinute: row.tenant.ratePerMinute,
  };
}

export async function revokeApiKey(
  prisma: Prisma,
  prefix: string,
  cache: ApiKeyCache = apiKeyCache,
): Promise<void> {
  const r = await prisma.apiKey.updateMany({
    where: { prefix, revokedAt: null },
    data: { revokedAt: new Date() },
  });
  // Immediate in this process; other processes stop accepting the key within KEY_CACHE_TTL_MS.
  cache.invalidatePrefix(prefix);
  if (r.count === 0) throw new AppError('NOT_FOUND', `no active API key with prefix ${prefix}`);
}
