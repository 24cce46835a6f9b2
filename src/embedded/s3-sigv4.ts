/**
 * Verifies AWS Signature Version 4 on requests to the embedded S3 (s3rver 3.7.1 accepts any V4
 * signature, and unsigned requests too: a tenant could edit a presigned URL's path to another
 * tenant's key, or upload more bytes than declared). Both forms are checked: query parameters
 * (presigned URLs, with expiry) and the Authorization header (the platform's own SDK client).
 *
 * No signing code of our own: the request is re-signed with the AWS SDK's signer
 * (@smithy/signature-v4, as the S3 client and presigner configure it: no double path escaping)
 * from what the request carries, and the results are compared in constant time. Not verified:
 * the body against a declared payload hash (the SDK sends none it signs for uploads: presigned
 * PUTs are UNSIGNED-PAYLOAD, and the platform's client talks to its own embedded store), and
 * aws-chunked streaming signatures (the platform never sends them to s3rver).
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';

export type S3Credentials = { accessKeyId: string; secretAccessKey: string };
export type SigV4Request = { method: string; url: string; headers: IncomingHttpHeaders };
export type Verdict =
  | { ok: true }
  | { ok: false; code: 'AccessDenied' | 'SignatureDoesNotMatch'; message: string };

const ALGORITHM = 'AWS4-HMAC-SHA256';
/** How far a request's signing time may be from ours (AWS allows 15 minutes). */
const MAX_SKEW_MS = 15 * 60 * 1000;
/** AWS's limit on a presigned URL's lifetime. */
const MAX_EXPIRES_SECONDS = 7 * 24 * 3600;
/** Query parameters of a presigned URL that the signature covers by construction, not as input. */
const AUTH_PARAMS = new Set([
  'x-amz-algorithm',
  'x-amz-credential',
  'x-amz-date',
  'x-amz-expires',
  'x-amz-signedheaders',
  'x-amz-signature',
]);

const deny = (message: string): Verdict => ({ ok: false, code: 'AccessDenied', message });
const mismatch = (): Verdict => ({
  ok: false,
  code: 'SignatureDoesNotMatch',
  message: 'The request signature we calculated does not match the signature you provided.',
});

/** `20261206T024745Z` -> Date, or undefined. */
function amzDate(s: string | undefined): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s ?? '');
  if (!m) return undefined;
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

type Scope = { accessKeyId: string; shortDate: string; region: string; service: string };

function parseCredential(credential: string | undefined): Scope | undefined {
  const parts = (credential ?? '').split('/');
  if (parts.length !== 5 || parts[4] !== 'aws4_request') return undefined;
  return { accessKeyId: parts[0], shortDate: parts[1], region: parts[2], service: parts[3] };
}

export function sigV4Verifier(credentials: S3Credentials, region: string) {
  const signer = new SignatureV4({
    credentials,
    region,
    service: 's3',
    sha256: Sha256,
    // S3 signs the path as sent (already escaped once); the SDK's S3 client does the same.
    uriEscapePath: false,
    applyChecksum: false,
  });

  /** The scope and signed headers, checked against our credentials and the request's clock. */
  function checkScope(scope: Scope | undefined, signedAt: Date | undefined, now: Date): Verdict | undefined {
    if (!scope || !signedAt) return deny('The authorization is malformed.');
    if (scope.accessKeyId !== credentials.accessKeyId)
      return deny('The AWS access key ID you provided does not exist in our records.');
    if (scope.region !== region || scope.service !== 's3')
      return deny('The credential scope is not valid here.');
    if (scope.shortDate !== signedAt.toISOString().slice(0, 10).replaceAll('-', ''))
      return deny('The credential date does not match the signing date.');
    if (signedAt.getTime() - now.getTime() > MAX_SKEW_MS) return deny('The request is signed in the future.');
    return undefined;
  }

  /** Headers named in SignedHeaders, with the request's values (a missing one fails the signature). */
  function signedHeaders(list: string, headers: IncomingHttpHeaders): Record<string, string> {
    const out: Record<string, string> = {};
    for (const name of list.split(';')) {
      const v = headerValue(headers, name);
      if (v !== undefined) out[name] = v;
    }
    return out;
  }

  return async function verify(req: SigV4Request, now: Date = new Date()): Promise<Verdict> {
    const url = new URL(req.url, 'http://embedded-s3');
    const path = url.pathname;
    const params = [...url.searchParams];
    const hostHeader = headerValue(req.headers, 'host') ?? '';
    const [hostname, port] = hostHeader.split(':');
    const base = {
      method: req.method,
      protocol: 'http:',
      hostname,
      port: port ? Number(port) : undefined,
      path,
    };

    const q = new Map(params.map(([k, v]) => [k.toLowerCase(), v]));
    const auth = headerValue(req.headers, 'authorization');
    if (q.has('x-amz-algorithm') && auth === undefined) {
      // Presigned URL (query auth).
      if (q.get('x-amz-algorithm') !== ALGORITHM)
        return deny('Only AWS4-HMAC-SHA256 signatures are accepted.');
      const signedAt = amzDate(q.get('x-amz-date'));
      const bad = checkScope(parseCredential(q.get('x-amz-credential')), signedAt, now);
      if (bad) return bad;
      const expires = Number(q.get('x-amz-expires'));
      if (!Number.isInteger(expires) || expires < 1 || expires > MAX_EXPIRES_SECONDS)
        return deny('X-Amz-Expires must be 1..604800 seconds.');
      if (now.getTime() > (signedAt as Date).getTime() + expires * 1000) return deny('Request has expired.');
      const list = q.get('x-amz-signedheaders') ?? '';
      if (!list.split(';').includes('host')) return deny('The host header must be signed.');
      // Other X-Amz-* parameters were headers the presigner hoisted into the query (payload hash,
      // checksums): hand them back as headers under the same names, and it hoists them again.
      const headers = signedHeaders(list, req.headers);
      const query: Record<string, string | string[]> = {};
      for (const [k, v] of params) {
        const lk = k.toLowerCase();
        if (AUTH_PARAMS.has(lk)) continue;
        if (lk.startsWith('x-amz-')) headers[k] = v;
        else query[k] = k in query ? [...[query[k]].flat(), v] : v;
      }
      const signed = await signer.presign(
        { ...base, headers, query },
        { signingDate: signedAt, expiresIn: expires, signableHeaders: new Set(list.split(';')) },
      );
      const ok =
        signed.query?.['X-Amz-SignedHeaders'] === list &&
        same(String(signed.query?.['X-Amz-Signature']), q.get('x-amz-signature') ?? '');
      return ok ? { ok: true } : mismatch();
    }
    if (auth !== undefined && !q.has('x-amz-algorithm')) {
      // Authorization header.
      const m =
        /^AWS4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/.exec(
          auth.trim(),
        );
      if (!m) return deny('Only AWS4-HMAC-SHA256 signatures are accepted.');
      const [, credential, list, signature] = m;
      const signedAt = amzDate(headerValue(req.headers, 'x-amz-date'));
      const bad = checkScope(parseCredential(credential), signedAt, now);
      if (bad) return bad;
      if (Math.abs(now.getTime() - (signedAt as Date).getTime()) > MAX_SKEW_MS)
        return deny('The difference between the request time and the current time is too large.');
      if (!list.split(';').includes('host')) return deny('The host header must be signed.');
      const query: Record<string, string | string[]> = {};
      for (const [k, v] of params) query[k] = k in query ? [...[query[k]].flat(), v] : v;
      const signed = await signer.sign(
        { ...base, headers: signedHeaders(list, req.headers), query },
        { signingDate: signedAt, signableHeaders: new Set(list.split(';')) },
      );
      const got = /SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/.exec(
        String(signed.headers.authorization),
      );
      return got && got[1] === list && same(got[2], signature) ? { ok: true } : mismatch();
    }
    return deny(
      auth === undefined
        ? 'Anonymous access is not allowed.'
        : 'Only one authentication mechanism is allowed.',
    );
  };
}
