/**
 * Serves the built playground SPA (dist/web, produced by `npm run build:web`) at `/`.
 * Mounted at '/', it is the fallback for every path no other handler claims, so it answers only
 * files that exist in the build and keeps the JSON 404 for everything else (API clients that
 * mistype a path get a machine-readable error, not an HTML page).
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { extname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type RouteHandler, sendJson } from './app.ts';

export const DEFAULT_WEB_DIR = fileURLToPath(new URL('../../dist/web/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.txt': 'text/plain; charset=utf-8',
};

// Images come from presigned S3 URLs on another origin and the API may sit behind another host
// name, so img-src and connect-src allow http(s)/ws(s); scripts stay same-origin only.
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  'img-src * data: blob:',
  'connect-src *',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const NOT_BUILT = `<!doctype html><html lang="en"><meta charset="utf-8"><title>Harmon</title>
<p>The web playground is not built. Run <code>npm run build:web</code> and reload.</p></html>`;

export function staticWebHandler(dir: string = DEFAULT_WEB_DIR): RouteHandler {
  const root = resolve(dir);
  return (req, res) => {
    const method = req.method ?? 'GET';
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    } catch {
      return sendJson(res, 400, { error: { code: 'BAD_USER_INPUT', message: 'malformed URL path' } });
    }
    if (path === '/' || path === '/index.html') {
      if (method !== 'GET' && method !== 'HEAD')
        return sendJson(res, 405, { error: { code: 'BAD_USER_INPUT', message: 'use GET' } });
      if (!existsSync(resolve(root, 'index.html'))) {
        res.writeHead(503, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        return void res.end(method === 'HEAD' ? undefined : NOT_BUILT);
      }
      return sendFile(res, resolve(root, 'index.html'), method, 'no-cache');
    }
    const file = resolve(root, `.${path}`);
    // Refuse anything outside the build folder (`..`, encoded separators) and non-files.
    const inside = file.startsWith(root + sep);
    const isFile = inside && existsSync(file) && statSync(file).isFile();
    if (!isFile || (method !== 'GET' && method !== 'HEAD'))
      return sendJson(res, 404, { error: { code: 'NOT_FOUND', message: `no route for ${path}` } });
    // Vite puts content-hashed names under /assets/: safe to cache forever.
    const cache = path.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache';
    sendFile(res, file, method, cache);
  };
}

function sendFile(res: Parameters<RouteHandler>[1], file: string, method: string, cache: string): void {
  const type = CONTENT_TYPES[extname(file)] ?? 'application/octet-stream';
  res.writeHead(200, {
    'content-type': type,
    'content-length': statSync(file).size,
    'cache-control': cache,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    ...(type.startsWith('text/html') ? { 'content-security-policy': CSP } : {}),
  });
  if (method === 'HEAD') return void res.end();
  createReadStream(file).pipe(res);
}
