/**
 * Authentication and admission for every transport: `Authorization: Bearer <key>` (HTTP, SSE) or
 * the graphql-ws connection_init payload `{ authorization: 'Bearer <key>' }` -> tenant, then the
 * tenant's request rate limit. The result is the per-operation context whose `db` is the
 * tenant-scoped data layer, so resolvers cannot reach another tenant's rows.
 */
import { randomUUID } from 'node:crypto';
import { AppError } from '../shared/errors.ts';
import { forTenant } from '../storage/tenant-scope.ts';
import { resolveApiKey } from '../tenancy/api-keys.ts';
import { requestBucketKey } from '../tenancy/rate-limit.ts';
import type { ApiContext, ApiDeps } from './types.ts';

export type Principal = { tenantId: string; keyId: string; scopes: string[]; ratePerMinute: number };

/** The bearer token of an Authorization header value, or undefined. */
export function bearerToken(header: unknown): string | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

export async function authenticate(deps: ApiDeps, authorization: unknown): Promise<Principal> {
  const token = bearerToken(authorization);
  if (!token) throw new AppError('UNAUTHENTICATED', 'Send an API key as "Authorization: Bearer <key>".');
  const key = await resolveApiKey(deps.prisma, token);
  if (!key) throw new AppError('UNAUTHENTICATED', 'The API key is unknown or revoked.');
  const tenant = await deps.prisma.tenant.findUnique({
    where: { id: key.tenantId },
    select: { ratePerMinute: true },
  });
  if (!tenant) throw new AppError('UNAUTHENTICATED', 'The API key belongs to no tenant.');
  return { ...key, ratePerMinute: tenant.ratePerMinute };
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

export function contextFor(deps: ApiDeps, p: Principal, requestId: string = randomUUID()): ApiContext {
  return {
    deps,
    tenantId: p.tenantId,
    keyId: p.keyId,
    scopes: p.scopes,
    db: forTenant(deps.prisma, p.tenantId),
    requestId,
    log: deps.log.child({ requestId, tenantId: p.tenantId }),
  };
}

/**
 * Scopes: '*' allows everything; 'jobs:read' reads (queries, subscriptions); 'jobs:write' also
 * creates and cancels jobs and uploads.
 */
export function requireScope(ctx: ApiContext, scope: 'jobs:read' | 'jobs:write'): void {
  const s = ctx.scopes;
  const ok = s.includes('*') || s.includes(scope) || (scope === 'jobs:read' && s.includes('jobs:write'));
  if (!ok) throw new AppError('FORBIDDEN', `This API key lacks the "${scope}" scope.`);
}
