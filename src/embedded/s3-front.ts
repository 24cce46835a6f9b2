/**
 * The embedded S3's front door: an HTTP proxy on loopback that lets a request through to s3rver
 * only when its SigV4 signature verifies (s3-sigv4.ts), and answers 403 with an S3 error
 * document otherwise. s3rver itself checks no V4 signature at all. CORS preflights pass
 * unsigned (browsers never sign them; s3rver answers them from the bucket's CORS rules).
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { logger } from '../shared/logger.ts';
import type { SigV4Request, Verdict } from './s3-sigv4.ts';

const log = logger.child({ component: 'embedded-s3' });

export type S3Front = { port: number; close(): Promise<void> };

const xmlEscape = (s: string) =>
  s.replace(
    /[<>&'"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] ?? c,
  );

function refuse(req: IncomingMessage, res: ServerResponse, v: Exclude<Verdict, { ok: true }>): void {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${v.code}</Code><Message>${xmlEscape(v.message)}</Message></Error>`;
  res.writeHead(403, {
    'content-type': 'application/xml',
    'content-length': req.method === 'HEAD' ? '0' : String(Buffer.byteLength(body)),
    // The body of a refused upload is not read; the connection cannot carry another request.
    connection: 'close',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** Query parameters of SigV4 query auth, which s3rver must not see (see `forward`). */
const AUTH_PARAMS = /^x-amz-(algorithm|credential|date|expires|signedheaders|signature|security-token)$/i;

/**
 * Passes a verified request on to s3rver as an anonymous one: s3rver knows only its own fixed
 * account and would refuse any other access key, and it checks nothing we rely on.
 */
function forward(req: IncomingMessage, res: ServerResponse, upstreamPort: number): void {
  // Node's server already answered any `Expect: 100-continue`; s3rver must not be asked again.
  const { expect: _expect, authorization: _authorization, ...headers } = req.headers;
  const url = new URL(req.url ?? '/', 'http://embedded-s3');
  for (const name of [...url.searchParams.keys()]) if (AUTH_PARAMS.test(name)) url.searchParams.delete(name);
  const path = `${url.pathname}${url.search}`;
  const up = httpRequest(
    { host: '127.0.0.1', port: upstreamPort, method: req.method, path, headers },
    (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    },
  );
  up.on('error', (err) => {
    log.warn({ err }, 'embedded S3 upstream failed');
    if (!res.headersSent) res.writeHead(502).end();
    else res.destroy();
  });
  req.pipe(up);
}

export async function startS3Front(options: {
  upstreamPort: number;
  verify: (req: SigV4Request) => Promise<Verdict>;
  port?: number;
}): Promise<S3Front> {
  const server = createServer((req, res) => {
    if (req.method === 'OPTIONS') return forward(req, res, options.upstreamPort);
    options
      .verify({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers })
      .then((v) => (v.ok ? forward(req, res, options.upstreamPort) : refuse(req, res, v)))
      .catch((err) => {
        log.warn({ err }, 'embedded S3 signature check failed');
        refuse(req, res, { ok: false, code: 'AccessDenied', message: 'The signature could not be checked.' });
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
