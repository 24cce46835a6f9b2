// The rate limit counts what a request does (issue 13, finding 4): every root mutation field
// takes a token, over HTTP and over graphql-ws, all-or-nothing, so one request of 100 aliased
// `generate` fields no longer creates 100 jobs on a tenant limited to 60 requests a minute.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type ApiHarness, collect, startApi } from './harness.ts';

let h: ApiHarness;
before(async () => {
  h = await startApi();
});
after(() => h.close());

const aliased = (n: number, tag: string) =>
  `mutation { ${Array.from(
    { length: n },
    (_, i) => `g${i}: generate(input: { prompt: "${tag} ${i}", size: 64, steps: 2 }) { id }`,
  ).join(' ')} }`;

async function tenant(name: string, ratePerMinute: number) {
  const t = await h.newTenant(name);
  await h.db.prisma.tenant.update({
    where: { id: t.tenantId },
    data: { ratePerMinute, monthlyImageQuota: 100_000 },
  });
  return t;
}

const jobsOf = (tenantId: string) => h.db.prisma.job.count({ where: { tenantId } });

test('HTTP: 100 aliased generates on a 60-a-minute tenant create no job and say why', async () => {
  const t = await tenant('alias-100', 60);
  const r = await h.gql(t.key, aliased(100, 'many'));
  assert.equal(r.status, 400, JSON.stringify(r.body));
  assert.equal(r.body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
  assert.match(String(r.body.errors?.[0]?.message), /100 mutations/);
  assert.equal(r.body.data ?? null, null);
  assert.equal(await jobsOf(t.tenantId), 0);
});

test('HTTP: each aliased mutation takes a token; a request that does not fit runs nothing', async () => {
  const t = await tenant('alias-http', 10);
  const first = await h.gql<Record<string, { id: string }>>(t.key, aliased(6, 'first'));
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.equal(Object.keys(first.body.data ?? {}).length, 6);
  // 4 tokens left: this request needs 6 (1 at admission, 5 for the extra fields).
  const second = await h.gql(t.key, aliased(6, 'second'));
  assert.equal(second.status, 429, JSON.stringify(second.body));
  assert.equal(second.body.errors?.[0]?.extensions?.code, 'RATE_LIMITED');
  assert.equal(typeof second.body.errors?.[0]?.extensions?.retryAfter, 'number');
  assert.equal(second.headers.get('retry-after'), String(second.body.errors?.[0]?.extensions?.retryAfter));
  assert.equal(await jobsOf(t.tenantId), 6, 'the refused request created nothing');
  // Fragments and inline fragments are expanded: 3 more fields than the 3 tokens left.
  const viaFragments = await h.gql(
    t.key,
    `mutation { ...M ... on Mutation { c: generate(input: { prompt: "c", size: 64, steps: 2 }) { id } } }
     fragment M on Mutation { a: generate(input: { prompt: "a", size: 64, steps: 2 }) { id }
       b: generate(input: { prompt: "b", size: 64, steps: 2 }) { id }
       d: cancelJob(id: "8a3c1f0e-1111-4222-8333-444455556666") { id } }`,
  );
  assert.equal(
    viaFragments.body.errors?.[0]?.extensions?.code,
    'RATE_LIMITED',
    JSON.stringify(viaFragments.body),
  );
  assert.equal(await jobsOf(t.tenantId), 6);
});

test('graphql-ws: aliased mutations in one subscribe message are counted the same way', async () => {
  const t = await tenant('alias-ws', 10);
  const first = await collect<Record<string, { id: string }>>(h.ws(t.key), aliased(6, 'ws-first'), {});
  assert.deepEqual(first.errors, []);
  assert.equal(Object.keys(first.data[0] ?? {}).length, 6);
  const second = await collect(h.ws(t.key), aliased(6, 'ws-second'), {});
  // A refused subscribe is a graphql-ws Error message: the client throws its list of errors.
  const refusal = [second.errors[0]].flat()[0] as { extensions?: { code?: string } };
  assert.equal(refusal.extensions?.code, 'RATE_LIMITED', JSON.stringify(second.errors));
  assert.equal(await jobsOf(t.tenantId), 6);
});

test('a single mutation still costs one token (no double counting)', async () => {
  const t = await tenant('alias-one', 3);
  for (let i = 0; i < 3; i++) {
    const r = await h.gql(t.key, aliased(1, `one ${i}`));
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  assert.equal((await h.gql(t.key, aliased(1, 'over'))).status, 429);
  assert.equal(await jobsOf(t.tenantId), 3);
});
