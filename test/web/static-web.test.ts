import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createApp } from '../../src/server/app.ts';
import { staticWebHandler } from '../../src/server/static-web.ts';
import { logger } from '../../src/shared/logger.ts';

describe('static web handler', () => {
  let dir: string;
  let server: Server;
  let base: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'harmon-web-'));
    mkdirSync(join(dir, 'assets'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>t</title>');
    writeFileSync(join(dir, 'assets', 'index-abc.js'), 'console.log(1)');
    writeFileSync(join(dir, '..', `secret-${process.pid}.txt`), 'nope');
    const app = createApp(logger);
    app.mount('/', staticWebHandler(dir));
    app.mount('/graphql', (_req, res) => void res.end('api'));
    server = createServer((req, res) => void app.handle(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(join(dir, '..', `secret-${process.pid}.txt`), { force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  test('serves index.html at / with a CSP and no-cache', async () => {
    const res = await fetch(`${base}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(res.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    assert.equal(await res.text(), '<!doctype html><title>t</title>');
  });

  test('serves hashed assets as immutable with their content type', async () => {
    const res = await fetch(`${base}/assets/index-abc.js`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.match(res.headers.get('cache-control') ?? '', /immutable/);
    assert.equal(await res.text(), 'console.log(1)');
  });

  test('longer mounts still win over the fallback', async () => {
    assert.equal(await (await fetch(`${base}/graphql`)).text(), 'api');
  });

  test('unknown paths, traversal and writes get the JSON 404', async () => {
    for (const path of ['/nope', `/..%2fsecret-${process.pid}.txt`, '/assets', '/assets/']) {
      const res = await fetch(`${base}${path}`);
      assert.equal(res.status, 404, path);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
    }
    const post = await fetch(`${base}/assets/index-abc.js`, { method: 'POST', body: 'x' });
    assert.equal(post.status, 404);
  });

  test('says how to build when the bundle is missing', async () => {
    const app = createApp(logger);
    app.mount('/', staticWebHandler(join(dir, 'missing')));
    const s = createServer((req, res) => void app.handle(req, res));
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    try {
      const res = await fetch(`http://127.0.0.1:${(s.address() as AddressInfo).port}/`);
      assert.equal(res.status, 503);
      assert.match(await res.text(), /npm run build:web/);
    } finally {
      await new Promise<void>((r) => s.close(() => r()));
    }
  });
});
