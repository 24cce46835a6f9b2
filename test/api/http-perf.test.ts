// The hot-path shortcuts over real HTTP: cached keys keep mapping to their own tenant, a revoke in
// this process is refused on the next request, and an oversized body is refused without reading
// the rest of it.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, test } from 'node:test';
import { revokeApiKey } from '../../src/tenancy/api-keys.ts';
import { type ApiHarness, startApi } from './harness.ts';

let h: ApiHarness;
before(async () => {
  h = await startApi();
});
after(() => h.close());

const VIEWER = '{ viewer { tenant { id name } } }';
type Viewer = { viewer: { tenant: { id: string; name: string } } };

test('interleaved requests with cached keys each see their own tenant', async () => {
  const a = await h.newTenant('perf-a');
  const b = await h.newTenant('perf-b');
  const rs = await Promise.all(
    Array.from({ length: 20 }, (_, i) => h.gql<Viewer>(i % 2 ? b.key : a.key, VIEWER)),
  );
  rs.forEach((r, i) => {
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.data?.viewer.tenant.id, i % 2 ? b.tenantId : a.tenantId);
  });
});

test('a key revoked in this process is refused on the very next request', async () => {
  const t = await h.newTenant('perf-revoke');
  assert.equal((await h.gql(t.key, VIEWER)).status, 200);
  assert.equal((await h.gql(t.key, VIEWER)).status, 200);
  const prefix = t.key.split('_')[1];
  await revokeApiKey(h.db.prisma, prefix);
  const r = await h.gql(t.key, VIEWER);
  assert.equal(r.status, 401);
  assert.equal(r.body.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
});

test('a body over 2 MiB is BAD_USER_INPUT and the connection is closed', async () => {
  const t = await h.newTenant('perf-body');
  const url = new URL(`${h.url}/graphql`);
  const big = JSON.stringify({ query: VIEWER, variables: { pad: 'x'.repeat(3 * 1024 * 1024) } });
  const res = await new Promise<{ status: number; connection?: string; body: string }>((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${t.key}` },
      },
      (r) => {
        let body = '';
        r.on('data', (c) => {
          body += c;
        });
        r.on('end', () => resolve({ status: r.statusCode ?? 0, connection: r.headers.connection, body }));
      },
    );
    // The server may close before the whole body is written; only the response matters.
    req.on('error', (e) =>
      String(e).includes('EPIPE') || String(e).includes('ECONNRESET') ? null : reject(e),
    );
    req.end(big);
  });
  assert.equal(res.status, 400);
  assert.equal(res.connection, 'close');
  assert.equal(JSON.parse(res.body).errors[0].extensions.code, 'BAD_USER_INPUT');
  // A normal request still works afterwards.
  assert.equal((await h.gql(t.key, VIEWER)).status, 200);
});
