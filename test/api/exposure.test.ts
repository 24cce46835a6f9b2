// Exposure (issue 13, finding 10): failed authentication is throttled per client address, across
// API instances, without locking out a valid tenant behind the same address; /metrics serves tenant ids and their GPU
// usage only to a caller with METRICS_TOKEN, and is free of tenant data without one.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { addressKey, clientAddress, FAILED_AUTH_PER_MINUTE } from '../../src/api/use-auth-throttle.ts';
import { type ApiHarness, collect, startApi } from './harness.ts';

const randomKey = () => `hmn_${randomBytes(6).toString('hex')}_${randomBytes(32).toString('base64url')}`;
const MODELS = '{ models { id } }';

describe('failed-auth throttling (TRUSTED_PROXY_HOPS=1: the client is the rightmost X-Forwarded-For entry)', () => {
  let h: ApiHarness;
  before(async () => {
    h = await startApi({ env: { TRUSTED_PROXY_HOPS: '1' } });
  });
  after(() => h.close());
  const from = (address: string) => ({ 'x-forwarded-for': `198.51.100.77, ${address}` });

  test(`random keys: ${FAILED_AUTH_PER_MINUTE} answers a minute, then 429 RATE_LIMITED with retryAfter`, async () => {
    const tenant = await h.newTenant('throttle-neighbour');
    // The tenant behind the same address uses its key before and during the attack.
    assert.equal((await h.gql(tenant.key, MODELS, {}, from('203.0.113.5'))).status, 200);
    for (let i = 0; i < FAILED_AUTH_PER_MINUTE; i++) {
      const r = await h.gql(randomKey(), MODELS, {}, from('203.0.113.5'));
      assert.equal(r.status, 401, `attempt ${i}`);
    }
    const r = await h.gql(randomKey(), MODELS, {}, from('203.0.113.5'));
    assert.equal(r.status, 429);
    const e = r.body.errors?.[0];
    assert.equal(e?.extensions?.code, 'RATE_LIMITED');
    const retryAfter = e?.extensions?.retryAfter as number;
    assert.ok(retryAfter >= 1 && retryAfter <= 60, String(retryAfter));
    assert.equal(r.headers.get('retry-after'), String(retryAfter));
    // A malformed key is throttled the same way; so is a graphql-ws connection from there.
    assert.equal((await h.gql('not-a-key', MODELS, {}, from('203.0.113.5'))).status, 429);
    // The neighbour's key is still served (it is in this process's verified-key cache).
    assert.equal((await h.gql(tenant.key, MODELS, {}, from('203.0.113.5'))).status, 200);
    // Another address is not affected, and nor is a key that is not in use from there.
    const fresh = await h.newTenant('throttle-other-address');
    assert.equal((await h.gql(randomKey(), MODELS, {}, from('203.0.113.6'))).status, 401);
    assert.equal((await h.gql(fresh.key, MODELS, {}, from('203.0.113.6'))).status, 200);
  });

  test('an IPv6 attacker cannot escape by rotating addresses inside its /64', async () => {
    for (let i = 0; i < FAILED_AUTH_PER_MINUTE; i++)
      assert.equal(
        (await h.gql(randomKey(), MODELS, {}, from(`2001:db8:1:2::${i.toString(16)}`))).status,
        401,
      );
    assert.equal((await h.gql(randomKey(), MODELS, {}, from('2001:db8:1:2:ffff::1'))).status, 429);
    assert.equal((await h.gql(randomKey(), MODELS, {}, from('2001:db8:1:3::1'))).status, 401);
  });

  test('two API instances share one budget: a guesser alternating between them gets the same number of answers', async () => {
    const other = await startApi({ env: { TRUSTED_PROXY_HOPS: '1' }, sharedDb: h.db });
    try {
      const instances = [h, other];
      for (let i = 0; i < FAILED_AUTH_PER_MINUTE; i++) {
        const r = await instances[i % 2].gql(randomKey(), MODELS, {}, from('203.0.113.9'));
        assert.equal(r.status, 401, `attempt ${i}`);
      }
      // The budget is spent in all: each instance refuses the next guess, not only the one that
      // saw the last failure.
      for (const instance of instances) {
        const r = await instance.gql(randomKey(), MODELS, {}, from('203.0.113.9'));
        assert.equal(r.status, 429);
        assert.equal(r.body.errors?.[0]?.extensions?.code, 'RATE_LIMITED');
      }
    } finally {
      await other.close();
    }
  });

  test('graphql-ws connections count too and are closed with 4429 once throttled', async () => {
    // ws sends no X-Forwarded-For here: the TCP peer (loopback) is the address.
    const h2 = await startApi();
    try {
      for (let i = 0; i < FAILED_AUTH_PER_MINUTE; i++) {
        const { errors } = await collect(h2.ws(randomKey()), 'subscription { jobs { seq } }', {});
        assert.equal((errors[0] as { code?: number }).code, 4401, `attempt ${i}`);
      }
      const { errors } = await collect(h2.ws(randomKey()), 'subscription { jobs { seq } }', {});
      const closed = errors[0] as { code?: number; reason?: string };
      assert.equal(closed.code, 4429, String(closed.reason));
      assert.match(String(closed.reason), /RATE_LIMITED/);
    } finally {
      await h2.close();
    }
  });
});

test('the client address: X-Forwarded-For only through trusted hops; IPv6 grouped by /64', () => {
  // Without a trusted proxy the header is the client's own claim and is ignored.
  assert.equal(clientAddress('10.0.0.9', '1.2.3.4', 0), '10.0.0.9');
  // Behind one proxy (the ALB) the rightmost entry is what the proxy saw; left entries are forgeable.
  assert.equal(clientAddress('10.0.0.9', 'forged, 1.2.3.4', 1), '1.2.3.4');
  assert.equal(clientAddress('10.0.0.9', 'forged, 1.2.3.4, 10.0.0.2', 2), '1.2.3.4');
  assert.equal(clientAddress('10.0.0.9', undefined, 1), '10.0.0.9');
  assert.equal(addressKey('::ffff:192.0.2.1'), '192.0.2.1');
  assert.equal(addressKey('192.0.2.1'), '192.0.2.1');
  assert.equal(addressKey('2001:db8:1:2::5'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:0db8:0001:0002:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64');
  assert.equal(addressKey('::1'), '0:0:0:0::/64');
});

describe('/metrics exposure', () => {
  /** Marks one job finished with GPU time, so the per-tenant GPU counter has a sample. */
  async function finishedJobOf(h: ApiHarness): Promise<string> {
    const t = await h.newTenant(`metrics-${randomBytes(3).toString('hex')}`);
    const r = await h.gql<{ generate: { id: string } }>(
      t.key,
      'mutation { generate(input: { prompt: "gpu", size: 64, steps: 2 }) { id } }',
    );
    const id = r.body.data?.generate.id as string;
    assert.ok(id, JSON.stringify(r.body));
    await h.db.prisma.job.update({
      where: { id },
      data: { status: 'SUCCEEDED', startedAt: new Date(), finishedAt: new Date(), gpuMs: 1234 },
    });
    return t.tenantId;
  }

  test('without METRICS_TOKEN: open, and no tenant id or per-tenant series in it', async () => {
    const h = await startApi();
    try {
      const tenantId = await finishedJobOf(h);
      const r = await fetch(`${h.url}/metrics`);
      assert.equal(r.status, 200);
      const text = await r.text();
      assert.match(text, /harmon_jobs\{status="SUCCEEDED",kind="GENERATE"\} 1/);
      assert.ok(!text.includes(tenantId), 'a tenant id is in /metrics');
      assert.ok(!/tenant=/.test(text), 'a tenant label is in /metrics');
    } finally {
      await h.close();
    }
  });

  test('with METRICS_TOKEN: 401 with a code without it, per-tenant GPU usage with it', async () => {
    const token = randomBytes(24).toString('hex');
    const h = await startApi({ env: { METRICS_TOKEN: token } });
    try {
      const tenantId = await finishedJobOf(h);
      for (const auth of [undefined, 'Bearer wrong-token', `Bearer ${token}x`]) {
        const r = await fetch(`${h.url}/metrics`, { headers: auth ? { authorization: auth } : {} });
        assert.equal(r.status, 401);
        assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'UNAUTHENTICATED');
      }
      const r = await fetch(`${h.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(r.status, 200);
      assert.match(
        await r.text(),
        new RegExp(`harmon_job_gpu_ms_total\\{tenant="${tenantId}",kind="GENERATE"\\} 1234`),
      );
    } finally {
      await h.close();
    }
  });
});
