// A table of bad requests over real HTTP: each gets a coded error, never a 5xx, and writes no row.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type ApiHarness, startApi } from './harness.ts';

let h: ApiHarness;
let key: string;
let otherUploadId: string;
const uploads: Record<string, string> = {};

const PNG_1x1 = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);

async function createUpload(
  k: string,
  contentType: string,
  bytes: number,
): Promise<{ id: string; uploadUrl: string }> {
  const r = await h.gql<{ createUpload: { id: string; uploadUrl: string } }>(
    k,
    'mutation($c:String!,$b:Int!){ createUpload(contentType:$c, bytes:$b) { id uploadUrl } }',
    { c: contentType, b: bytes },
  );
  assert.ok(r.body.data, JSON.stringify(r.body));
  return r.body.data.createUpload;
}

async function put(url: string, contentType: string, body: Buffer): Promise<void> {
  const r = await fetch(url, {
    method: 'PUT',
    headers: { 'content-type': contentType },
    body: new Uint8Array(body),
  });
  assert.equal(r.status, 200);
}

before(async () => {
  h = await startApi();
  ({ key } = await h.newTenant('bad-input'));
  await h.db.prisma.tenant.updateMany({ data: { ratePerMinute: 100_000 } });
  const other = await h.newTenant('someone-else');
  const o = await createUpload(other.key, 'image/png', PNG_1x1.length);
  await put(o.uploadUrl, 'image/png', PNG_1x1);
  otherUploadId = o.id;
  const notImage = Buffer.from('this is not an image at all');
  const text = await createUpload(key, 'image/png', notImage.length);
  await put(text.uploadUrl, 'image/png', notImage);
  uploads.text = text.id;
  // The presigned PUT refuses more bytes than declared; an object that is bigger anyway (another
  // S3 that does not check) is written straight into the store under the upload's key.
  const big = await createUpload(key, 'image/png', 50);
  const bigRow = await h.db.prisma.upload.findUniqueOrThrow({ where: { id: big.id } });
  await h.s3.blobStore.put(bigRow.key, Buffer.concat([PNG_1x1, Buffer.alloc(100)]), {
    contentType: 'image/png',
  });
  uploads.big = big.id;
  uploads.empty = (await createUpload(key, 'image/png', 1000)).id;
});
after(() => h.close());

async function counts(): Promise<number[]> {
  const p = h.db.prisma;
  return Promise.all([
    p.job.count(),
    p.jobEvent.count(),
    p.upload.count(),
    p.asset.count(),
    p.usageRecord.count(),
  ]);
}

const GEN = 'mutation($i: GenerateInput!){ generate(input:$i) { id } }';
const DESC = 'mutation($i: DescribeInput!){ describe(input:$i) { id } }';
const UPLOAD = 'mutation($c:String!,$b:Int!){ createUpload(contentType:$c, bytes:$b) { id } }';
const gen = (extra: Record<string, unknown>) => ({
  query: GEN,
  variables: { i: { prompt: 'a cat', size: 64, steps: 4, ...extra } },
});
const desc = (i: Record<string, unknown>) => ({ query: DESC, variables: { i } });
const b64 = (b: Buffer) => b.toString('base64');
const deepIntrospection = `{ __schema { types { fields { type { fields { type { fields { type { fields { type { fields { type { fields { type { name } } } } } } } } } } } } } } }`;

type Case = {
  name: string;
  code: string;
  field?: string;
  req: () => { query: string; variables?: Record<string, unknown> };
};

const cases: Case[] = [
  {
    name: 'missing prompt',
    code: 'GRAPHQL_VALIDATION_FAILED',
    req: () => ({ query: 'mutation { generate(input: { size: 64 }) { id } }' }),
  },
  { name: 'prompt null via variables', code: 'BAD_USER_INPUT', req: () => gen({ prompt: null }) },
  { name: 'empty prompt', code: 'BAD_USER_INPUT', field: 'prompt', req: () => gen({ prompt: '' }) },
  { name: 'blank prompt', code: 'BAD_USER_INPUT', field: 'prompt', req: () => gen({ prompt: '   \n ' }) },
  {
    name: 'oversized prompt',
    code: 'BAD_USER_INPUT',
    field: 'prompt',
    req: () => gen({ prompt: 'x'.repeat(2001) }),
  },
  { name: 'steps 0', code: 'BAD_USER_INPUT', field: 'steps', req: () => gen({ steps: 0 }) },
  { name: 'steps 10^6', code: 'BAD_USER_INPUT', field: 'steps', req: () => gen({ steps: 1_000_000 }) },
  {
    name: 'steps above the image token count',
    code: 'BAD_USER_INPUT',
    field: 'steps',
    req: () => gen({ size: 64, steps: 17 }),
  },
  { name: 'size 17', code: 'BAD_USER_INPUT', field: 'size', req: () => gen({ size: 17 }) },
  { name: 'size 48 (below minimum)', code: 'BAD_USER_INPUT', field: 'size', req: () => gen({ size: 48 }) },
  { name: 'size 4096', code: 'BAD_USER_INPUT', field: 'size', req: () => gen({ size: 4096 }) },
  {
    name: "size above the model's limit",
    code: 'BAD_USER_INPUT',
    field: 'size',
    req: () => gen({ size: 512 }),
  },
  {
    name: 'unknown enum literal',
    code: 'GRAPHQL_VALIDATION_FAILED',
    req: () => ({ query: 'mutation { generate(input: { prompt: "x", cfgSchedule: SOMETIMES }) { id } }' }),
  },
  {
    name: 'unknown enum via variables',
    code: 'BAD_USER_INPUT',
    req: () => gen({ cfgSchedule: 'SOMETIMES' }),
  },
  { name: 'cfg below 1', code: 'BAD_USER_INPUT', field: 'cfg', req: () => gen({ cfg: 0.5 }) },
  { name: 'cfg above 20', code: 'BAD_USER_INPUT', field: 'cfg', req: () => gen({ cfg: 21 }) },
  { name: 'temperature 0', code: 'BAD_USER_INPUT', field: 'temperature', req: () => gen({ temperature: 0 }) },
  { name: 'count 0', code: 'BAD_USER_INPUT', field: 'count', req: () => gen({ count: 0 }) },
  { name: 'count 5', code: 'BAD_USER_INPUT', field: 'count', req: () => gen({ count: 5 }) },
  { name: 'negative seed', code: 'BAD_USER_INPUT', field: 'seed', req: () => gen({ seed: -1 }) },
  { name: 'seed as a string', code: 'BAD_USER_INPUT', req: () => gen({ seed: 'forty-two' }) },
  {
    name: 'blank negativePrompt',
    code: 'BAD_USER_INPUT',
    field: 'negativePrompt',
    req: () => gen({ negativePrompt: ' ' }),
  },
  { name: 'unknown model', code: 'BAD_USER_INPUT', field: 'model', req: () => gen({ model: 'harmon-99b' }) },
  {
    name: 'non-https webhook',
    code: 'BAD_USER_INPUT',
    field: 'webhookUrl',
    req: () => gen({ webhookUrl: 'ftp://example.com/hook' }),
  },
  {
    name: 'empty idempotencyKey',
    code: 'BAD_USER_INPUT',
    field: 'idempotencyKey',
    req: () => gen({ idempotencyKey: '' }),
  },
  {
    name: 'oversized idempotencyKey',
    code: 'BAD_USER_INPUT',
    field: 'idempotencyKey',
    req: () => gen({ idempotencyKey: 'k'.repeat(201) }),
  },
  { name: 'describe without an image', code: 'BAD_USER_INPUT', req: () => desc({ prompt: 'what?' }) },
  {
    name: 'describe with two image sources',
    code: 'BAD_USER_INPUT',
    req: () => desc({ imageBase64: b64(PNG_1x1), imageUrl: 'https://example.com/a.png' }),
  },
  {
    name: 'malformed base64',
    code: 'BAD_USER_INPUT',
    field: 'imageBase64',
    req: () => desc({ imageBase64: 'not base64!!' }),
  },
  {
    name: 'base64 of a non-image',
    code: 'BAD_USER_INPUT',
    field: 'imageBase64',
    req: () => desc({ imageBase64: b64(Buffer.from('hello world, not a picture')) }),
  },
  {
    name: 'base64 over the inline limit',
    code: 'BAD_USER_INPUT',
    field: 'imageBase64',
    req: () => desc({ imageBase64: b64(Buffer.concat([PNG_1x1, Buffer.alloc(1024 * 1024 + 10)])) }),
  },
  {
    name: 'image URL on 127.0.0.1',
    code: 'BAD_USER_INPUT',
    field: 'imageUrl',
    req: () => desc({ imageUrl: 'https://127.0.0.1/cat.png' }),
  },
  {
    name: 'image URL on localhost',
    code: 'BAD_USER_INPUT',
    field: 'imageUrl',
    req: () => desc({ imageUrl: 'https://localhost:8443/cat.png' }),
  },
  {
    name: 'image URL on [::1]',
    code: 'BAD_USER_INPUT',
    field: 'imageUrl',
    req: () => desc({ imageUrl: 'https://[::1]/cat.png' }),
  },
  {
    name: 'image URL over plain http',
    code: 'BAD_USER_INPUT',
    field: 'imageUrl',
    req: () => desc({ imageUrl: 'http://example.com/cat.png' }),
  },
  {
    name: 'image URL with credentials',
    code: 'BAD_USER_INPUT',
    field: 'imageUrl',
    req: () => desc({ imageUrl: 'https://user:pw@example.com/cat.png' }),
  },
  {
    name: 'unknown upload id',
    code: 'NOT_FOUND',
    req: () => desc({ uploadId: '8a3c1f0e-1111-4222-8333-444455556666' }),
  },
  { name: 'malformed upload id', code: 'NOT_FOUND', req: () => desc({ uploadId: "1' OR '1'='1" }) },
  { name: "another tenant's upload id", code: 'NOT_FOUND', req: () => desc({ uploadId: otherUploadId }) },
  {
    name: 'non-image upload',
    code: 'BAD_USER_INPUT',
    field: 'uploadId',
    req: () => desc({ uploadId: uploads.text }),
  },
  {
    name: 'upload over its byte limit',
    code: 'BAD_USER_INPUT',
    field: 'uploadId',
    req: () => desc({ uploadId: uploads.big }),
  },
  {
    name: 'upload never uploaded',
    code: 'BAD_USER_INPUT',
    field: 'uploadId',
    req: () => desc({ uploadId: uploads.empty }),
  },
  {
    name: 'maxTokens 0',
    code: 'BAD_USER_INPUT',
    field: 'maxTokens',
    req: () => desc({ imageBase64: b64(PNG_1x1), maxTokens: 0 }),
  },
  {
    name: 'maxTokens 5000',
    code: 'BAD_USER_INPUT',
    field: 'maxTokens',
    req: () => desc({ imageBase64: b64(PNG_1x1), maxTokens: 5000 }),
  },
  {
    name: 'createUpload text/plain',
    code: 'BAD_USER_INPUT',
    field: 'contentType',
    req: () => ({ query: UPLOAD, variables: { c: 'text/plain', b: 10 } }),
  },
  {
    name: 'createUpload 0 bytes',
    code: 'BAD_USER_INPUT',
    field: 'bytes',
    req: () => ({ query: UPLOAD, variables: { c: 'image/png', b: 0 } }),
  },
  {
    name: 'createUpload over the byte limit',
    code: 'BAD_USER_INPUT',
    field: 'bytes',
    req: () => ({ query: UPLOAD, variables: { c: 'image/png', b: 2_000_000_000 } }),
  },
  {
    name: 'deeply nested query',
    code: 'GRAPHQL_VALIDATION_FAILED',
    req: () => ({ query: deepIntrospection }),
  },
  {
    name: 'too costly query',
    code: 'GRAPHQL_VALIDATION_FAILED',
    req: () => ({
      query: `{ ${[1, 2, 3, 4, 5, 6].map((i) => `a${i}: jobs(first: 100) { edges { cursor node { id kind status progress model params text createdAt } } }`).join(' ')} }`,
    }),
  },
  {
    name: 'jobs(first: 1000)',
    code: 'BAD_USER_INPUT',
    field: 'first',
    req: () => ({ query: '{ jobs(first: 1000) { edges { cursor } } }' }),
  },
  {
    name: 'garbage cursor',
    code: 'BAD_USER_INPUT',
    field: 'after',
    req: () => ({ query: '{ jobs(after: "garbage") { edges { cursor } } }' }),
  },
  {
    name: 'bad createdAfter date',
    code: 'BAD_USER_INPUT',
    req: () => ({ query: '{ jobs(filter: { createdAfter: "yesterday" }) { edges { cursor } } }' }),
  },
  // Input that used to reach Postgres unchecked and come back as INTERNAL (issue 13, finding 7).
  {
    name: 'NUL in prompt',
    code: 'BAD_USER_INPUT',
    field: 'prompt',
    req: () => gen({ prompt: 'a\u0000cat' }),
  },
  {
    name: 'NUL in negativePrompt',
    code: 'BAD_USER_INPUT',
    field: 'negativePrompt',
    req: () => gen({ negativePrompt: 'no\u0000' }),
  },
  {
    name: 'NUL in idempotencyKey',
    code: 'BAD_USER_INPUT',
    field: 'idempotencyKey',
    req: () => gen({ idempotencyKey: 'k\u0000' }),
  },
  {
    name: 'NUL in webhookUrl',
    code: 'BAD_USER_INPUT',
    field: 'webhookUrl',
    req: () => gen({ webhookUrl: 'https://example.com/\u0000' }),
  },
  {
    name: 'NUL in the describe prompt',
    code: 'BAD_USER_INPUT',
    field: 'prompt',
    req: () => desc({ imageBase64: b64(PNG_1x1), prompt: 'what\u0000?' }),
  },
  {
    name: 'lone surrogate in prompt',
    code: 'BAD_USER_INPUT',
    field: 'prompt',
    req: () => gen({ prompt: 'a \ud800 cat' }),
  },
  {
    name: 'lone surrogate in idempotencyKey',
    code: 'BAD_USER_INPUT',
    field: 'idempotencyKey',
    req: () => gen({ idempotencyKey: '\udc00' }),
  },
  {
    name: 'createdAfter in the year 0000',
    code: 'BAD_USER_INPUT',
    req: () => ({ query: '{ jobs(filter: { createdAfter: "0000-01-01T00:00:00Z" }) { edges { cursor } } }' }),
  },
  {
    name: 'createdAfter in the year 0000 via variables',
    code: 'BAD_USER_INPUT',
    req: () => ({
      query: 'query($d: DateTime) { jobs(filter: { createdAfter: $d }) { edges { cursor } } }',
      variables: { d: '0000-06-01T00:00:00Z' },
    }),
  },
  {
    name: 'cursor in the year 0000',
    code: 'BAD_USER_INPUT',
    field: 'after',
    req: () => ({
      query: '{ jobs(after: $c) { edges { cursor } } }'.replace(
        '$c',
        JSON.stringify(
          Buffer.from('0000-01-01T00:00:00.000Z|8a3c1f0e-1111-4222-8333-444455556666').toString('base64url'),
        ),
      ),
    }),
  },
  {
    name: 'a subscription over HTTP POST',
    code: 'BAD_USER_INPUT',
    req: () => ({ query: 'subscription { jobs { seq } }' }),
  },
  {
    name: '1,000 aliased database fields',
    code: 'GRAPHQL_VALIDATION_FAILED',
    req: () => ({
      query: `{ ${Array.from({ length: 1000 }, (_, i) => `j${i}: job(id: "8a3c1f0e-1111-4222-8333-444455556666") { id }`).join(' ')} }`,
    }),
  },
  {
    name: 'malformed job id',
    code: 'NOT_FOUND',
    req: () => ({ query: '{ job(id: "../../etc/passwd") { id } }' }),
  },
  {
    name: 'unknown job id',
    code: 'NOT_FOUND',
    req: () => ({ query: '{ job(id: "8a3c1f0e-1111-4222-8333-444455556666") { id } }' }),
  },
  {
    name: 'cancel an unknown job',
    code: 'NOT_FOUND',
    req: () => ({ query: 'mutation { cancelJob(id: "8a3c1f0e-1111-4222-8333-444455556666") { id } }' }),
  },
  {
    name: 'syntax error',
    code: 'GRAPHQL_PARSE_FAILED',
    req: () => ({ query: 'mutation { generate(input: { prompt: "x" } { id }' }),
  },
  {
    name: 'unknown field',
    code: 'GRAPHQL_VALIDATION_FAILED',
    req: () => ({ query: '{ job(id: "x") { password } }' }),
  },
];

test(`bad-input table (${cases.length} cases): coded errors, no 5xx, nothing written`, async () => {
  assert.ok(cases.length >= 30);
  const failures: string[] = [];
  for (const c of cases) {
    const before = await counts();
    const { query, variables } = c.req();
    const r = await h.gql(key, query, variables);
    const after = await counts();
    const err = r.body.errors?.[0];
    const problems: string[] = [];
    if (r.status >= 500) problems.push(`status ${r.status}`);
    if (err?.extensions?.code !== c.code)
      problems.push(`code ${String(err?.extensions?.code)} (${err?.message})`);
    if (
      c.field &&
      !(err?.extensions?.fields as { path: string }[] | undefined)?.some((f) => f.path === c.field)
    )
      problems.push(`fields ${JSON.stringify(err?.extensions?.fields)} lack ${c.field}`);
    if (r.body.data && Object.values(r.body.data).some((v) => v !== null)) problems.push('returned data');
    if (JSON.stringify(before) !== JSON.stringify(after)) problems.push(`rows changed ${before} -> ${after}`);
    if (problems.length) failures.push(`${c.name}: ${problems.join('; ')}`);
  }
  assert.deepEqual(failures, []);
});

test('a body that is not JSON is a 400 with a code, not a crash', async () => {
  const r = await fetch(`${h.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: '{"query": ',
  });
  assert.equal(r.status, 400);
  const body = (await r.json()) as { errors: { extensions: { code: string } }[] };
  assert.equal(body.errors[0].extensions.code, 'BAD_USER_INPUT');
});

test("graphql's standard introspection query stays within the depth and cost limits", async () => {
  const { getIntrospectionQuery } = await import('graphql');
  const r = await h.gql<{ __schema: { queryType: { name: string } } }>(key, getIntrospectionQuery());
  assert.equal(r.status, 200, JSON.stringify(r.body.errors));
  assert.equal(r.body.data?.__schema.queryType.name, 'Query');
});
