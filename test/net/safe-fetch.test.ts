import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { checkUrl, safeFetch } from '../../src/net/safe-fetch.ts';
import { AppError } from '../../src/shared/errors.ts';

let server: Server;
let base: string;
let connections = 0;

before(async () => {
  server = createServer((req, res) => {
    if (req.url === '/big') return res.end(Buffer.alloc(4096, 1));
    if (req.url === '/redirect-private') {
      res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data' });
      return res.end();
    }
    res.end('hello');
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

const refused = (re: RegExp) => (e: unknown) =>
  e instanceof AppError && e.code === 'BAD_USER_INPUT' && re.test(e.message);

test('loopback, localhost and private targets are refused before any connection', async () => {
  const before = connections;
  await assert.rejects(
    safeFetch(`${base}/x`, { maxBytes: 100, timeoutMs: 2000, allowHttp: true }),
    refused(/loopback/),
  );
  await assert.rejects(
    safeFetch(`http://localhost:${new URL(base).port}/x`, {
      maxBytes: 100,
      timeoutMs: 2000,
      allowHttp: true,
    }),
    refused(/local machine/),
  );
  await assert.rejects(safeFetch('https://[::1]/x', { maxBytes: 100, timeoutMs: 2000 }), refused(/loopback/));
  await assert.rejects(
    safeFetch('https://[::ffff:127.0.0.1]/x', { maxBytes: 100, timeoutMs: 2000 }),
    refused(/loopback/),
  );
  await assert.rejects(safeFetch(`${base}/x`, { maxBytes: 100, timeoutMs: 2000 }), refused(/only https/));
  assert.equal(connections, before, 'no connection was opened');
});

test('DNS answers are checked: any private address refuses the host (no connection made)', async () => {
  const resolve = async () => [
    { address: '93.184.216.34', family: 4 },
    { address: '10.0.0.5', family: 4 },
  ];
  await assert.rejects(
    checkUrl('https://images.example.com/a.png', { resolve }),
    refused(/10\.0\.0\.5 \(private/),
  );
  const ok = await checkUrl('https://images.example.com/a.png', {
    resolve: async () => [{ address: '93.184.216.34', family: 4 }],
  });
  assert.equal(ok.address, '93.184.216.34');
  await assert.rejects(checkUrl('https://user:pw@example.com/'), refused(/credentials/));
  await assert.rejects(checkUrl('ftp://example.com/'), refused(/https/));
});

test('with the test flag loopback works; size limits and redirect re-checks still apply', async () => {
  const policy = { allowLoopback: true, allowHttp: true };
  const res = await safeFetch(`${base}/x`, { ...policy, maxBytes: 100, timeoutMs: 2000 });
  assert.equal(res.body.toString(), 'hello');
  await assert.rejects(
    safeFetch(`${base}/big`, { ...policy, maxBytes: 1000, timeoutMs: 2000 }),
    refused(/larger than the limit|more than the limit/),
  );
  await assert.rejects(
    safeFetch(`${base}/redirect-private`, { ...policy, maxBytes: 1000, timeoutMs: 2000, maxRedirects: 2 }),
    refused(/link-local/),
  );
});
