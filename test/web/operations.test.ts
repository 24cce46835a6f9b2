// The playground's GraphQL documents must stay valid against schema.graphql (the source of truth):
// a renamed field fails here instead of as a console error in the browser.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { buildSchema, parse, validate } from 'graphql';
import * as ops from '../../src/web/lib/operations.ts';

test('every playground operation validates against schema.graphql', () => {
  const schema = buildSchema(readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8'));
  const docs = Object.entries(ops).filter(
    ([name, v]) => typeof v === 'string' && /_(QUERY|MUTATION|SUBSCRIPTION)$/.test(name),
  );
  assert.ok(docs.length >= 7, `found ${docs.length} operations`);
  for (const [name, source] of docs) {
    const errors = validate(schema, parse(source as string));
    assert.deepEqual(
      errors.map((e) => e.message),
      [],
      `${name} is invalid`,
    );
  }
});

test('a document with an unknown field is caught (the check can fail)', () => {
  const schema = buildSchema(readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8'));
  assert.ok(validate(schema, parse('query { viewer { nope } }')).length > 0);
});
