/**
 * Fetching client-given URLs (describe images, webhook deliveries) without SSRF: the host name is
 * resolved here, EVERY resolved address is checked with the classifier before any connection, and
 * the socket is pinned to the checked address (a second DNS answer — rebinding — cannot redirect
 * it). Size and time are bounded; redirects are followed only when asked, each hop re-checked.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { AppError } from '../shared/errors.ts';
import { classifyAddress, isForbiddenHostname } from './ssrf.ts';

/**
 * Test-only allowances. Nothing reads them from configuration or the environment: only code that
 * builds a worker service or enqueues in-process (tests) can pass them, so a production process
 * cannot be switched into fetching loopback or plain-http URLs by a stray setting.
 */
export interface FetchPolicy {
  /** Allow loopback addresses (never private or link-local). */
  allowLoopback?: boolean;
  /** Allow plain http (production accepts https only). */
  allowHttp?: boolean;
}

export interface SafeFetchOptions extends FetchPolicy {
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  maxBytes: number;
  timeoutMs: number;
  maxRedirects?: number;
  signal?: AbortSignal;
  /** For error messages: "image URL", "webhook URL". */
  what?: string;
  /** The input field the URL came from: refusals name it in `details.fields` (API errors). */
  field?: string;
  /** Injected resolver (tests use it to simulate DNS answers without a DNS server). */
  resolve?: (host: string) => Promise<{ address: string; family: number }[]>;
}

export interface SafeResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/**
 * Parses and checks a URL and resolves it to one allowed address; throws BAD_USER_INPUT before any
 * connection. The one URL rule for everything fetched or called on a client's behalf: checked
 * when a job is enqueued (webhooks) and again by safeFetch at every request.
 */
export async function checkUrl(
  raw: string,
  options: FetchPolicy & Pick<SafeFetchOptions, 'resolve' | 'what' | 'field'> = {},
): Promise<{ url: URL; address: string; family: 4 | 6 }> {
  const what = options.what ?? 'URL';
  const refuse = (why: string, cause?: unknown) =>
    new AppError('BAD_USER_INPUT', `The ${what} was refused: ${why}.`, {
      cause,
      details: {
        url: raw.slice(0, 200),
        ...(options.field ? { fields: [{ path: options.field, message: why }] } : {}),
      },
    });
  if (!URL.canParse(raw)) throw refuse('it is not a valid URL');
  const url = new URL(raw);
  if (url.protocol !== 'https:' && !(options.allowHttp && url.protocol === 'http:'))
    throw refuse('only https URLs are accepted');
  if (url.username || url.password) throw refuse('credentials in URLs are not accepted');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!isIP(host) && isForbiddenHostname(host) && !(options.allowLoopback && /^localhost\.?$/i.test(host))) {
    throw refuse(`host "${host}" names a local machine`);
  }
  const addresses = isIP(host)
    ? [{ address: host, family: isIP(host) }]
    : await (options.resolve ?? ((h) => dnsLookup(h, { all: true, verbatim: true })))(host).catch(
        (cause: unknown) => {
          throw refuse(`host "${host}" could not be resolved`, cause);
        },
      );
  if (addresses.length === 0) throw refuse(`host "${host}" has no addresses`);
  for (const a of addresses) {
    const v = classifyAddress(a.address, { allowLoopback: options.allowLoopback });
    if (!v.allowed) throw refuse(`${host} resolves to ${a.address} (${v.reason})`);
  }
  return { url, address: addresses[0].address, family: addresses[0].family === 6 ? 6 : 4 };
}

export async function safeFetch(raw: string, options: SafeFetchOptions): Promise<SafeResponse> {
  const what = options.what ?? 'URL';
  const deadline = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  let current = raw;
  for (let hop = 0; ; hop++) {
    const target = await checkUrl(current, options);
    const res = await requestPinned(target, options, signal, what);
    const location = res.headers.location;
    if (res.status >= 300 && res.status < 400 && location && hop < (options.maxRedirects ?? 0)) {
      current = new URL(location, target.url).toString();
      continue;
    }
    return res;
  }
}

function requestPinned(
  target: { url: URL; address: string; family: 4 | 6 },
  options: SafeFetchOptions,
  signal: AbortSignal,
  what: string,
): Promise<SafeResponse> {
  // Every lookup the socket makes answers with the address we checked.
  const lookup: LookupFunction = (_host, opts, cb) => {
    if ((opts as { all?: boolean }).all)
      (cb as (e: null, a: { address: string; family: number }[]) => void)(null, [
        { address: target.address, family: target.family },
      ]);
    else cb(null, target.address, target.family);
  };
  const mod = target.url.protocol === 'https:' ? https : http;
  return new Promise<SafeResponse>((resolve, reject) => {
    const fail = (why: string, cause?: unknown) =>
      reject(new AppError('BAD_USER_INPUT', `Fetching the ${what} failed: ${why}.`, { cause }));
    const req = mod.request(
      target.url,
      { method: options.method ?? 'GET', headers: options.headers, lookup, signal, agent: false },
      (res) => {
        const declared = Number(res.headers['content-length'] ?? Number.NaN);
        if (Number.isFinite(declared) && declared > options.maxBytes) {
          res.destroy();
          return fail(`the response is ${declared} bytes, more than the limit of ${options.maxBytes}`);
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > options.maxBytes) {
            res.destroy();
            fail(`the response is larger than the limit of ${options.maxBytes} bytes`);
          } else chunks.push(c);
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', (e) => fail(signal.aborted ? 'it took too long' : e.message, e));
      },
    );
    req.on('error', (e) => fail(signal.aborted ? 'it took too long' : e.message, e));
    if (options.body !== undefined) req.end(options.body);
    else req.end();
  });
}

/** A resolver over a `host -> addresses` lookup (the API's injectable one) for checkUrl. */
export function resolverOf(
  lookup: (host: string) => Promise<string[]>,
): (host: string) => Promise<{ address: string; family: number }[]> {
  return async (host) => (await lookup(host)).map((address) => ({ address, family: isIP(address) }));
}
