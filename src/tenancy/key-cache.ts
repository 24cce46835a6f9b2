/**
 * In-process cache of authenticated API keys, so the hot path (every HTTP request, every
 * graphql-ws connection) does not pay a database round trip to map a key to its tenant.
 *
 * Keyed by the key's lookup prefix plus sha256 of its secret: only a request that presents the
 * full, correct key can hit an entry (a wrong secret hashes to another entry and misses). Only
 * successful lookups are cached, so a newly created key works at once.
 *
 * Revocation: `revokeApiKey` in this process drops the key's entries immediately. Another process
 * (a second API instance, a Lambda, the CLI) cannot reach this cache, so there a revoked key keeps
 * working for at most the TTL (`KEY_CACHE_TTL_MS`, 30 s) after the revoke. The same delay applies
 * to a changed `Tenant.ratePerMinute` or key scopes. Open WebSocket and SSE streams re-check their
 * key through this cache (src/api/use-auth.ts), so they close within TTL + the re-check interval.
 */

import { BoundedMap } from '../shared/bounded-map.ts';

/** What a request needs from its key: tenant, scopes and the tenant's request rate. */
export type KeyPrincipal = { tenantId: string; keyId: string; scopes: string[]; ratePerMinute: number };

/** Revocation delay for other processes; also how stale a cached rate limit or scope can be. */
export const KEY_CACHE_TTL_MS = 30_000;
/** Bounds memory under many distinct keys; the oldest entry is dropped first. */
export const KEY_CACHE_MAX_ENTRIES = 10_000;

type Entry = { principal: KeyPrincipal; prefix: string; expiresAt: number };

export class ApiKeyCache {
  private readonly entries: BoundedMap<string, Entry>;
  private readonly listeners = new Set<() => void>();
  readonly ttlMs: number;
  private readonly now: () => number;

  constructor(options: { ttlMs?: number; maxEntries?: number; now?: () => number } = {}) {
    this.ttlMs = options.ttlMs ?? KEY_CACHE_TTL_MS;
    this.entries = new BoundedMap(options.maxEntries ?? KEY_CACHE_MAX_ENTRIES);
    this.now = options.now ?? Date.now;
  }

  /**
   * Calls `listener` after keys were dropped in this process (a revoke), so holders of long-lived
   * connections can re-check their key at once instead of at their next periodic check.
   */
  onInvalidate(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The cached principal of `cacheKey`, or undefined when absent or expired. */
  get(cacheKey: string): KeyPrincipal | undefined {
    const e = this.entries.get(cacheKey);
    if (!e) return undefined;
    if (this.now() >= e.expiresAt) {
      this.entries.delete(cacheKey);
      return undefined;
    }
    return e.principal;
  }

  set(cacheKey: string, prefix: string, principal: KeyPrincipal): void {
    this.entries.set(cacheKey, { principal, prefix, expiresAt: this.now() + this.ttlMs });
  }

  /** Drops every entry of the key with this prefix (revocation in this process). */
  invalidatePrefix(prefix: string): void {
    for (const [k, e] of this.entries) if (e.prefix === prefix) this.entries.delete(k);
    this.notify();
  }

  /** Drops every entry of a tenant (e.g. after its limits changed in this process). */
  invalidateTenant(tenantId: string): void {
    for (const [k, e] of this.entries) if (e.principal.tenantId === tenantId) this.entries.delete(k);
    this.notify();
  }

  private notify(): void {
    for (const l of this.listeners) l();
  }

  clear(): void {
    this.entries.clear();
  }
}

/** The process-wide cache used by `authenticate` and invalidated by `revokeApiKey`. */
export const apiKeyCache = new ApiKeyCache();
