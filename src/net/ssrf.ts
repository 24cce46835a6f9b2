/**
 * Server-side request forgery guard: which IP addresses the worker may connect to when it fetches
 * a client-given URL (describe images, webhooks). Pure functions over address strings, so every
 * rule is unit-tested without opening a connection. The fetcher (safe-fetch.ts) resolves DNS
 * first, refuses the request if ANY resolved address is blocked (a name resolving to both a public
 * and a private address is an attack, not a fallback), and pins the connection to a checked one.
 */
import { isIP } from 'node:net';

export type AddressVerdict = { allowed: true } | { allowed: false; reason: string };

type Range = { bytes: number[]; prefix: number; reason: string };

/** IPv4 ranges that are not the public internet (RFC 6890 special-purpose registry and friends). */
const V4_BLOCKED: Range[] = [
  v4('0.0.0.0', 8, 'unspecified / "this network"'),
  v4('10.0.0.0', 8, 'private (RFC 1918)'),
  v4('100.64.0.0', 10, 'carrier-grade NAT (RFC 6598)'),
  v4('127.0.0.0', 8, 'loopback'),
  v4('169.254.0.0', 16, 'link-local (cloud metadata lives here)'),
  v4('172.16.0.0', 12, 'private (RFC 1918)'),
  v4('192.0.0.0', 24, 'IETF protocol assignments'),
  v4('192.0.2.0', 24, 'documentation (TEST-NET-1)'),
  v4('192.88.99.0', 24, '6to4 relay anycast'),
  v4('192.168.0.0', 16, 'private (RFC 1918)'),
  v4('198.18.0.0', 15, 'benchmarking'),
  v4('198.51.100.0', 24, 'documentation (TEST-NET-2)'),
  v4('203.0.113.0', 24, 'documentation (TEST-NET-3)'),
  v4('224.0.0.0', 4, 'multicast'),
  v4('240.0.0.0', 4, 'reserved / broadcast'),
];

const V6_BLOCKED: Range[] = [
  v6('::', 128, 'unspecified'),
  v6('::1', 128, 'loopback'),
  v6('100::', 64, 'discard-only'),
  v6('2001:db8::', 32, 'documentation'),
  v6('2001::', 23, 'IETF protocol assignments (Teredo, ORCHID ...)'),
  v6('fc00::', 7, 'unique local (ULA)'),
  v6('fe80::', 10, 'link-local'),
  v6('fec0::', 10, 'site-local (deprecated)'),
  v6('ff00::', 8, 'multicast'),
];

/** Is `address` (an IP literal, v4 or v6, optionally with a %zone) safe to connect to? */
export function classifyAddress(address: string, options: { allowLoopback?: boolean } = {}): AddressVerdict {
  const ip = address.trim().replace(/^\[|\]$/g, '');
  const zoneless = ip.split('%')[0];
  // A zone id (fe80::1%eth0) only exists on link-local style addresses: never public.
  if (zoneless !== ip) return { allowed: false, reason: 'scoped (zone id) address' };
  const family = isIP(zoneless);
  if (family === 4) return classifyV4(parseV4(zoneless), options);
  if (family === 6) return classifyV6(parseV6(zoneless), options);
  return { allowed: false, reason: 'not an IP address' };
}

function classifyV4(bytes: number[], options: { allowLoopback?: boolean }): AddressVerdict {
  for (const r of V4_BLOCKED) {
    if (inRange(bytes, r)) {
      if (options.allowLoopback && r.reason === 'loopback') return { allowed: true };
      return { allowed: false, reason: r.reason };
    }
  }
  return { allowed: true };
}

function classifyV6(bytes: number[], options: { allowLoopback?: boolean }): AddressVerdict {
  // Forms that carry an IPv4 address inside: judge the embedded address, so ::ffff:127.0.0.1 or
  // 64:ff9b::a9fe:a9fe cannot smuggle loopback or the metadata endpoint past the v4 rules.
  const embedded = embeddedV4(bytes);
  if (embedded) {
    const v = classifyV4(embedded.v4, options);
    return v.allowed ? v : { allowed: false, reason: `${embedded.form} of ${v.reason}` };
  }
  for (const r of V6_BLOCKED) {
    if (inRange(bytes, r)) {
      if (options.allowLoopback && r.reason === 'loopback') return { allowed: true };
      return { allowed: false, reason: r.reason };
    }
  }
  return { allowed: true };
}

function embeddedV4(b: number[]): { v4: number[]; form: string } | undefined {
  const zeros = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  // ::ffff:a.b.c.d (IPv4-mapped)
  if (zeros(0, 10) && b[10] === 0xff && b[11] === 0xff) return { v4: b.slice(12), form: 'IPv4-mapped IPv6' };
  // ::ffff:0:a.b.c.d (IPv4-translated, RFC 2765)
  if (zeros(0, 8) && b[8] === 0xff && b[9] === 0xff && zeros(10, 12))
    return { v4: b.slice(12), form: 'IPv4-translated IPv6' };
  // ::a.b.c.d (deprecated IPv4-compatible; :: and ::1 are handled as v6 specials)
  if (zeros(0, 12) && !(zeros(12, 15) && b[15] <= 1))
    return { v4: b.slice(12), form: 'IPv4-compatible IPv6' };
  // 64:ff9b::a.b.c.d and 64:ff9b:1::/48 (NAT64)
  if (
    b[0] === 0x00 &&
    b[1] === 0x64 &&
    b[2] === 0xff &&
    b[3] === 0x9b &&
    (zeros(4, 12) || (b[4] === 0 && b[5] === 1))
  ) {
    return { v4: b.slice(12), form: 'NAT64 IPv6' };
  }
  // 2002:AABB:CCDD::/48 (6to4)
  if (b[0] === 0x20 && b[1] === 0x02) return { v4: b.slice(2, 6), form: '6to4 IPv6' };
  return undefined;
}

function inRange(bytes: number[], r: Range): boolean {
  let bits = r.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((bytes[i] & mask) !== (r.bytes[i] & mask)) return false;
  }
  return true;
}

function parseV4(s: string): number[] {
  return s.split('.').map((p) => Number.parseInt(p, 10));
}

/** 16 bytes of an IPv6 literal (validated by net.isIP before), including a dotted-quad tail. */
function parseV6(s: string): number[] {
  let text = s.toLowerCase();
  const tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    tail.push(...parseV4(dotted[1]));
    text = `${text.slice(0, -dotted[1].length)}0:0`; // placeholder hextets, replaced below
  }
  const [head, rest] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const fill = rest === undefined ? [] : new Array(8 - h.length - t.length).fill('0');
  const groups = [...h, ...fill, ...t].map((g) => Number.parseInt(g || '0', 16));
  const bytes = groups.flatMap((g) => [g >> 8, g & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

function v4(addr: string, prefix: number, reason: string): Range {
  return { bytes: parseV4(addr), prefix, reason };
}

function v6(addr: string, prefix: number, reason: string): Range {
  return { bytes: parseV6(addr), prefix, reason };
}

/** Host names that must never be resolved at all (they name this machine or its network). */
export function isForbiddenHostname(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/\.$/, '');
  return (
    h === 'localhost' ||
    h.endsWith('.localhost') ||
    h.endsWith('.local') ||
    h.endsWith('.internal') ||
    h === ''
  );
}
