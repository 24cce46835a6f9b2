// Unit tests: the shared error policy (masking, codes, fields, retryAfter) and the depth/cost rule.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildSchema, GraphQLError, parse, validate } from 'graphql';
import { pino } from 'pino';
import { formatApiError } from '../../src/api/errors.ts';
import { typeDefs } from '../../src/api/schema.ts';
import { limitsRule } from '../../src/api/use-limits.ts';
import { AppError } from '../../src/shared/errors.ts';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'error' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { lines, scope: { log, requestId: 'req-42' } };
}

test('unexpected errors are masked as INTERNAL with the request id, and logged with the detail', () => {
  const { lines, scope } = capture();
  const secret = new Error('password=hunter2 at 10.0.0.5');
  const f = formatApiError(new GraphQLError(secret.message, { originalError: secret, path: ['job'] }), scope);
  assert.deepEqual(f.extensions, { code: 'INTERNAL', requestId: 'req-42' });
  assert.equal(f.message, 'Internal error');
  assert.ok(!JSON.stringify(f).includes('hunter2'));
  assert.equal(lines.length, 1);
  assert.equal(lines[0].requestId, 'req-42');
  assert.match(JSON.stringify(lines[0]), /hunter2/);
  // Non-client AppErrors (storage, database) are masked too.
  const s = formatApiError(
    new GraphQLError('x', {
      originalError: new AppError('STORAGE_ERROR', 'put tenants/x failed'),
      path: ['job'],
    }),
    scope,
  );
  assert.equal(s.extensions?.code, 'INTERNAL');
});

test('a thrown error wrapped without a path (a transport admission step) is not a validation error', () => {
  const { lines, scope } = capture();
  // What asGraphQLError makes of the pool's error when the rate limiter's round trip times out.
  const timeout = new Error('timeout exceeded when trying to connect');
  const db = formatApiError(new GraphQLError(timeout.message, { originalError: timeout }), scope);
  assert.equal(db.extensions?.code, 'SERVICE_UNAVAILABLE');
  assert.equal(typeof db.extensions?.retryAfter, 'number');
  const bug = new TypeError('cannot read properties of undefined (secret)');
  const internal = formatApiError(new GraphQLError(bug.message, { originalError: bug }), scope);
  assert.deepEqual(internal.extensions, { code: 'INTERNAL', requestId: 'req-42' });
  assert.ok(!JSON.stringify(internal).includes('secret'));
  assert.equal(lines.length, 1, 'the unexpected one is logged');
  // A real validation error (no original error) stays the client's.
  const v = formatApiError(new GraphQLError('Cannot query field "nope" on type "Query".'), scope);
  assert.equal(v.extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
});

test('client AppErrors keep their code, with fields and retryAfter', () => {
  const { lines, scope } = capture();
  const bad = formatApiError(
    new AppError('BAD_USER_INPUT', 'bad', { details: { issues: [{ path: 'steps', message: 'too big' }] } }),
    scope,
  );
  assert.deepEqual(bad.extensions, {
    code: 'BAD_USER_INPUT',
    fields: [{ path: 'steps', message: 'too big' }],
  });
  const rl = formatApiError(new AppError('RATE_LIMITED', 'slow down', { details: { retryAfter: 7 } }), scope);
  assert.deepEqual(rl.extensions, { code: 'RATE_LIMITED', retryAfter: 7 });
  assert.equal(
    formatApiError(new AppError('IMAGE_INVALID', 'not a PNG'), scope).extensions?.code,
    'BAD_USER_INPUT',
  );
  assert.equal(lines.length, 0);
});

const schema = buildSchema(typeDefs);
const errorsOf = (q: string, depth = 16, cost = 5000) =>
  validate(schema, parse(q), [limitsRule(depth, cost)]).map((e) => e.message);

test('depth counts through fragments; cost multiplies by `first`', () => {
  assert.deepEqual(errorsOf('{ jobs { edges { node { images { url } } } } }', 5), []);
  assert.equal(errorsOf('{ jobs { edges { node { images { url } } } } }', 4).length, 1);
  const viaFragment =
    'query Q { jobs { ...E } } fragment E on JobConnection { edges { node { images { url } } } }';
  assert.match(errorsOf(viaFragment, 4)[0] ?? '', /Q is nested 5 levels/);
  // jobs(1) + edges(10) + node(10) + id(10) = 31
  assert.deepEqual(errorsOf('{ jobs(first: 10) { edges { node { id } } } }', 16, 31), []);
  assert.match(errorsOf('{ jobs(first: 10) { edges { node { id } } } }', 16, 30)[0] ?? '', /costs 31/);
  // A variable `first` is costed at the page maximum (100).
  assert.match(
    errorsOf('query($n: Int) { jobs(first: $n) { edges { node { id } } } }', 16, 300)[0] ?? '',
    /costs 301/,
  );
});

test('a fragment cycle does not hang the limits rule', () => {
  const q =
    'query { jobs { ...A } } fragment A on JobConnection { ...B } fragment B on JobConnection { ...A }';
  assert.ok(Array.isArray(errorsOf(q)));
});
