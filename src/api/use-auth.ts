/**
 * Authentication: `Authorization: Bearer <key>` (HTTP, SSE, Lambda) or the graphql-ws
 * connection_init payload `{ authorization: 'Bearer <key>' }` -> the key's principal, served from
 * the in-process key cache after the first request of a key (src/tenancy/key-cache.ts). The
 * per-operation context's `db` is the tenant-scoped data layer, so resolvers cannot reach another
 * tenant's rows. Long-lived streams (graphql-ws sockets, SSE subscriptions) are re-checked by the
 * key watch below, so a revoked key stops streaming too.
 */

import { bearerToken } from '../server/app.ts';
import { BoundedMap } from '../shared/bounded-map.ts';
import { AppError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import type { Prisma } from '../storage/db.ts';
import { forTenant, type TenantScope } from '../storage/tenant-scope.ts';
import { cachedPrincipal, resolvePrincipal } from '../tenancy/api-keys.ts';
import { apiKeyCache, type KeyPrincipal } from '../tenancy/key-cache.ts';
import type { ApiPlugin } from './plugin-types.ts';
import type { ApiContext, ApiDeps, Transport } from './types.ts';

export function useAuth(deps: Pick<ApiDeps, 'prisma' | 'keyCache'>): ApiPlugin {
  const cache = deps.keyCache ?? apiKeyCache;
  return {
    name: 'auth',
    async onAdmit(state) {
      const token = bearerToken(state.authorization);
      if (!token) throw new AppError('UNAUTHENTICATED', 'Send an API key as "Authorization: Bearer <key>".');
      const principal = state.cachedKeysOnly
        ? cachedPrincipal(token, cache)
        : await resolvePrincipal(deps.prisma, token, cache);
      if (!principal) throw new AppError('UNAUTHENTICATED', 'The API key is unknown or revoked.');
      state.principal = principal;
    },
  };
}

/**
 * The tenant-scoped data layer is a stateless bundle of closures over (prisma, tenantId), so one
 * per tenant is reused instead of rebuilding it on every request.
 */
const scopes = new WeakMap<Prisma, BoundedMap<string, TenantScope>>();
const MAX_SCOPES_PER_CLIENT = 1000;

function scopeFor(prisma: Prisma, tenantId: string): TenantScope {
  let byTenant = scopes.get(prisma);
  if (!byTenant) {
    byTenant = new BoundedMap(MAX_SCOPES_PER_CLIENT);
    scopes.set(prisma, byTenant);
  }
  let scope = byTenant.get(tenantId);
  if (!scope) {
    scope = forTenant(prisma, tenantId);
    byTenant.set(tenantId, scope);
  }
  return scope;
}

export function contextFor(
  deps: ApiDeps,
  p: KeyPrincipal,
  requestId: string,
  transport: Transport,
): ApiContext {
  let log: Logger | undefined;
  return {
    deps,
    transport,
    tenantId: p.tenantId,
    keyId: p.keyId,
    scopes: p.scopes,
    ratePerMinute: p.ratePerMinute,
    db: scopeFor(deps.prisma, p.tenantId),
    requestId,
    // Most operations never log; the child logger is built on first use.
    get log(): Logger {
      log ??= deps.log.child({ requestId, tenantId: p.tenantId });
      return log;
    },
  };
}

/**
 * Scopes: '*' allows everything; 'jobs:read' reads (queries, subscriptions); 'jobs:write' also
 * creates and cancels jobs and uploads.
 */
export function requireScope(ctx: ApiContext, scope: 'jobs:read' | 'jobs:write' | 'webhooks:write'): void {
  const s = ctx.scopes;
  const ok = s.includes('*') || s.includes(scope) || (scope === 'jobs:read' && s.includes('jobs:write'));
  if (!ok) throw new AppError('FORBIDDEN', `This API key lacks the "${scope}" scope.`);
}

/** Re-check interval of open streams' keys: with the 30 s key cache, a revoke elsewhere ends them within 35 s. */
export const KEY_RECHECK_MS = 5000;

/**
 * Keys of long-lived streams, re-checked every `intervalMs` through the key cache and at once
 * when this process revokes a key (the cache's invalidate event). A revoke here closes the
 * streams after one database round trip; a revoke in another process within the cache TTL plus
 * `intervalMs`. Without it a socket authenticated once kept working after its key was revoked.
 */
export function createKeyWatch(
  deps: Pick<ApiDeps, 'prisma' | 'keyCache' | 'log'>,
  intervalMs = KEY_RECHECK_MS,
) {
  const cache = deps.keyCache ?? apiKeyCache;
  type Watch = { token: string; onRevoked: () => void };
  const watched = new Set<Watch>();
  let sweeping: Promise<void> | undefined;
  let again = false;

  async function sweepOnce(): Promise<void> {
    // One lookup per distinct key, however many streams share it.
    const alive = new Map<string, Promise<boolean>>();
    for (const w of watched)
      if (!alive.has(w.token))
        alive.set(
          w.token,
          resolvePrincipal(deps.prisma, w.token, cache).then(
            (p) => p !== null,
            (err) => {
              // Database trouble is not a revocation: keep the stream, try again next time.
              deps.log.warn({ err }, 'API key re-check failed');
              return true;
            },
          ),
        );
    const verdicts = new Map<string, boolean>();
    for (const [token, p] of alive) verdicts.set(token, await p);
    for (const w of [...watched]) if (verdicts.get(w.token) === false && watched.delete(w)) w.onRevoked();
  }
  function sweep(): void {
    if (sweeping) {
      again = true;
      return;
    }
    sweeping = sweepOnce().finally(() => {
      sweeping = undefined;
      if (again) {
        again = false;
        sweep();
      }
    });
  }
  const timer = setInterval(() => watched.size > 0 && sweep(), intervalMs);
  timer.unref();
  const off = cache.onInvalidate(() => watched.size > 0 && sweep());
  return {
    /** Calls `onRevoked` once when the key is revoked; the returned function stops watching. */
    watch(authorization: unknown, onRevoked: () => void): () => void {
      const token = bearerToken(authorization);
      if (!token) return () => {};
      const w: Watch = { token, onRevoked };
      watched.add(w);
      return () => {
        watched.delete(w);
      };
    },
    close(): void {
      clearInterval(timer);
      off();
      watched.clear();
    },
  };
}
