import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type ApiHarness, startApi } from './harness.ts';

let h: ApiHarness;
before(async () => {
  h = await startApi();
});
after(() => h.close());

test('generate over HTTP creates a QUEUED job and job() reads it back', async () => {
  const { key } = await h.newTenant('acme');
  const r = await h.gql<{ generate: { id: string; status: string } }>(
    key,
    'mutation($p:String!){ generate(input:{prompt:$p, size:64, steps:4}) { id status } }',
    { p: 'a cat' },
  );
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.data?.generate.status, 'QUEUED');
  const id = r.body.data?.generate.id;
  const q = await h.gql<{ job: { id: string; params: { prompt: string } } }>(
    key,
    'query($id:ID!){ job(id:$id) { id params } }',
    { id },
  );
  assert.equal(q.body.data?.job.id, id);
  assert.equal(q.body.data?.job.params.prompt, 'a cat');
});
