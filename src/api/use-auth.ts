/**
 * Authentication and admission for every transport: `Authorization: Bearer <key>` (HTTP, SSE) or
 * the graphql-ws connection_init payload `{ authorization: 'Bearer <key>' }` -> tenant, then the
 * tenant's request rate limit. The result is the per-operation context whose `db` is the
 * tenant-scoped data layer, so resolvers cannot reach another tenant's rows.
 */
import { randomUUID } from 'node:crypto';
import { AppError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import type { Prisma } from '../storage/db.ts';
import { forTenant, type TenantScope } from '../storage/tenant-scope.ts';
import { resolvePrincipal } from '../tenancy/api-keys.ts';
import type { KeyPrincipal } from '../tenancy/key-cache.ts';
import { requestBucketKey } from '../tenancy/rate-limit.ts';
import type { ApiContext, ApiDeps } from './types.ts';

export type Principal = KeyPrincipal;

/** The bearer token of an Authorization header value, or undefined. */
export function bearerToken(header: unknown): string | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

/**
 * Key -> principal. Served from the in-process key cache after the first request of a key
 * (src/tenancy/key-cache.ts: a revoke elsewhere takes effect here within 30 s).
 */
export async function authenticate(deps: ApiDeps, authorization: unknown): Promise<Principal> {
  const token = bearerToken(authorization);
  if (!token) throw new AppError('UNAUTHENTICATED', 'Send an API key as "Authorization: Bearer <key>".');
  const principal = await resolvePrincipal(deps.prisma, token);
  if (!principal) throw new AppError('UNAUTHENTICATED', 'The API key is unknown or revoked.');
  return principal;
}

/** Takes a token from the tenant's bucket; RATE_LIMITED with retryAfter when it is empty. */
export async function admit(deps: ApiDeps, p: Principal): Promise<void> {
  const d = await deps.rateLimiter.take(requestBucketKey(p.tenantId), p.ratePerMinute);
  if (!d.allowed) {
    throw new AppError(
      'RATE_LIMITED',
      `Too many requests: the limit is ${p.ratePerMinute} per minute. Retry in ${d.retryAfterSeconds} s.`,
      {
        details: { retryAfter: d.retryAfterSeconds },
      },
    );
  }
}

/**
 * The tenant-scoped data layer is a stateless bundle of closures over (prisma, tenantId), so one
 * per tenant is reused instead of rebuilding it on every request. Bounded: the oldest is dropped.
 */
const scopes = new WeakMap<Prisma, Map<string, TenantScope>>();
const MAX_SCOPES_PER_CLIENT = 1000;

function scopeFor(prisma: Prisma, tenantId: string): TenantScope {
  let byTenant = scopes.get(prisma);
  if (!byTenant) {
    byTenant = new Map();
    scopes.set(prisma, byTenant);
  }
  let scope = byTenant.get(tenantId);
  if (!scope) {
    scope = forTenant(prisma, tenantId);
    byTenant.set(tenantId, scope);
    if (byTenant.size > MAX_SCOPES_PER_CLIENT) {
      const oldest = byTenant.keys().next().value;
      if (oldest !== undefined) byTenant.delete(oldest);
    }
  }
  return scope;
}

export function contextFor(deps: ApiDeps, p: Principal, requestId: string = randomUUID()): ApiContext {
  let log: Logger | undefined;
  return {
    deps,
    tenantId: p.tenantId,
    keyId: p.keyId,
    scopes: p.scopes,
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
