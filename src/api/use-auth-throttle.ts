/**
 * Throttles failed authentication per client address: every presented key that fails takes a
 * token from the address's bucket (`perMinute` tokens, refilled continuously). While the bucket
 * is empty, only keys this process verified recently (the key cache) are admitted from that
 * address; any other key gets 429 RATE_LIMITED with retryAfter and no verdict, so a guesser gets
 * no more than `perMinute` answers a minute and no database lookups. A valid tenant behind the
 * same address is not locked out while its key is in use (cached); at worst an idle key waits
 * out one refill.
 *
 * Per process and in memory: each API instance throttles what it sees. IPv6 clients are grouped
 * by /64, the block one subscriber usually holds.
 */
import { isIP } from 'node:net';
import { bearerToken } from '../server/app.ts';
import { BoundedMap } from '../shared/bounded-map.ts';
import { AppError } from '../shared/errors.ts';
import type { ApiPlugin } from './plugin-types.ts';

export const FAILED_AUTH_PER_MINUTE = 30;
const MAX_ADDRESSES = 10_000;

/**
 * The client's address: with `trustedHops` proxies in front (each appending the address it saw to
 * X-Forwarded-For), the entry that many from the right; otherwise the TCP peer. Entries further
 * left were written by the client and prove nothing.
 */
export function clientAddress(peer: string | undefined, forwardedFor: unknown, trustedHops: number): string {
  if (trustedHops > 0) {
    const header = Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor;
    if (typeof header === 'string') {
      const hops = header
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      if (hops.length > 0) return hops[Math.max(0, hops.length - trustedHops)];
    }
  }
  return peer ?? 'unknown';
}

/** The throttling unit of an address: IPv4 as is, IPv6 by its /64 prefix. */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  if (isIP(address) !== 6) return address;
  const [head, tail = ''] = address.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = address.includes('::')
    ? [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

type Bucket = { tokens: number; at: number };

export function useAuthThrottle(options: { perMinute?: number; now?: () => number } = {}): ApiPlugin {
  const perMinute = options.perMinute ?? FAILED_AUTH_PER_MINUTE;
  const now = options.now ?? Date.now;
  const perMs = perMinute / 60_000;
  const buckets = new BoundedMap<string, Bucket>(MAX_ADDRESSES);

  /** The bucket refilled to now (full buckets are not stored). */
  const current = (key: string): Bucket => {
    const t = now();
    const b = buckets.get(key);
    if (!b) return { tokens: perMinute, at: t };
    return { tokens: Math.min(perMinute, b.tokens + (t - b.at) * perMs), at: t };
  };

  return {
    name: 'auth-throttle',
    onAdmit(state) {
      const key = addressKey(state.clientAddress);
      const before = current(key);
      const throttled = before.tokens < 1;
      if (throttled) state.cachedKeysOnly = true;
      return ({ error }) => {
        const failed = error instanceof AppError && error.code === 'UNAUTHENTICATED';
        // A missing header costs nothing and proves nothing; only presented keys are counted.
        if (!failed || bearerToken(state.authorization) === undefined) return;
        if (throttled) {
          const retryAfter = Math.max(1, Math.ceil((1 - before.tokens) / perMs / 1000));
          throw new AppError(
            'RATE_LIMITED',
            `Too many failed authentications from this address; retry in ${retryAfter} s with a valid API key.`,
            { details: { retryAfter } },
          );
        }
        const b = current(key);
        buckets.set(key, { tokens: b.tokens - 1, at: b.at });
      };
    },
  };
}
