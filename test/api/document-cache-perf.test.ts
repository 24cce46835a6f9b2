// The validated-document cache of the WebSocket path: one parse + validate per distinct query
// text, refused documents are refused every time (never cached), syntax errors still throw.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolvers } from '../../src/api/resolvers/index.ts';
import { buildExecutableSchema } from '../../src/api/schema.ts';
import { documentCache } from '../../src/api/use-limits.ts';

const schema = buildExecutableSchema(resolvers);

test('a valid query is parsed and validated once, then served from the cache', () => {
  const check = documentCache(schema);
  const q = 'subscription($id: ID!) { jobEvents(jobId: $id) { seq type } }';
  const a = check(q);
  const b = check(q);
  assert.deepEqual(a.errors, []);
  assert.equal(b.document, a.document, 'the same parsed document is reused');
  assert.notEqual(check(`${q} `).document, a.document, 'another text is parsed on its own');
});

test('invalid documents keep failing and are not cached', () => {
  const check = documentCache(schema);
  const unknown = '{ job(id: "x") { nope } }';
  const first = check(unknown);
  assert.ok(first.errors.length > 0);
  const second = check(unknown);
  assert.ok(second.errors.length > 0);
  assert.notEqual(second.document, first.document);
  // Introspection types are recursive: 10 x (fields > type) nests 22 levels, over the limit of 16.
  const deep = `{ __schema { types { ${'fields { type { '.repeat(10)}name${' } }'.repeat(10)} } } }`;
  const tooDeep = check(deep);
  assert.ok(tooDeep.errors.some((e) => /nested \d+ levels deep/.test(e.message)));
  assert.ok(check(deep).errors.length > 0);
  assert.throws(() => check('{ job(id: '), /Syntax Error/);
});

test('the cache is bounded', () => {
  const check = documentCache(schema, 2);
  const q = (n: number) => `{ models { id } m${n}: models { id } }`;
  const first = check(q(1)).document;
  check(q(2));
  check(q(3));
  assert.notEqual(check(q(1)).document, first, 'the oldest entry was evicted');
});
