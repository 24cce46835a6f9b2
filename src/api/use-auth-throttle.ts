/**
 * Throttles failed authentication per client address: every presented key that fails takes a
 * token from the address's bucket (`perMinute` tokens, refilled continuously). The bucket is the
 * shared rate limiter's (Postgres, `authFailureBucketKey`), so every API instance and Lambda
 * counts against the same budget: a guesser spreading requests over N instances still gets no more
 * than `perMinute` answers a minute in all (not N times that). Once the bucket is empty the failing
 * request gets 429 RATE_LIMITED with retryAfter instead of its verdict, and this instance
 * remembers the address as throttled until then: meanwhile only keys this process verified
 * recently (the key cache) are admitted from it, without a database lookup, and any other key gets
 * 429 at once. A valid tenant behind the same address is not locked out while its key is in use
 * (cached); at worst an idle key waits out one refill. Successful requests cost nothing here.
 *
 * IPv6 clients are grouped by /64, the block one subscriber usually holds.
 */
import { isIP } from 'node:net';
import { bearerToken } from '../server/app.ts';
import { BoundedMap } from '../shared/bounded-map.ts';
import { AppError } from '../shared/errors.ts';
import { authFailureBucketKey, type RateLimiter } from '../tenancy/rate-limit.ts';
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

/** The refusal of a throttled address. */
function throttled(retryAfter: number): AppError {
  return new AppError(
    'RATE_LIMITED',
    `Too many failed authentications from this address; retry in ${retryAfter} s with a valid API key.`,
    { details: { retryAfter } },
  );
}

export function useAuthThrottle(
  limiter: RateLimiter,
  options: { perMinute?: number; now?: () => number } = {},
): ApiPlugin {
  const perMinute = options.perMinute ?? FAILED_AUTH_PER_MINUTE;
  const now = options.now ?? Date.now;
  /** Addresses whose shared bucket was found empty, and until when (ms) this instance refuses them. */
  const blocked = new BoundedMap<string, number>(MAX_ADDRESSES);

  return {
    name: 'auth-throttle',
    onAdmit(state) {
      const key = addressKey(state.clientAddress);
      const until = blocked.get(key);
      const blockedNow = until !== undefined && until > now();
      if (until !== undefined && !blockedNow) blocked.delete(key);
      if (blockedNow) state.cachedKeysOnly = true;
      return async ({ error }) => {
        const failed = error instanceof AppError && error.code === 'UNAUTHENTICATED';
        // A missing header costs nothing and proves nothing; only presented keys are counted.
        if (!failed || bearerToken(state.authorization) === undefined) return;
        if (blockedNow) throw throttled(Math.max(1, Math.ceil(((until as number) - now()) / 1000)));
        let d: Awaited<ReturnType<RateLimiter['take']>>;
        try {
          d = await limiter.take(authFailureBucketKey(key), perMinute);
        } catch {
          return; // the database cannot count it now: the verdict (401) stands
        }
        if (d.allowed) return;
        blocked.set(key, now() + d.retryAfterSeconds * 1000);
        throw throttled(d.retryAfterSeconds);
      };
    },
  };
}
