// The admission path as a composition of small plugins (plugins.ts): hooks run in order, the
// `done` callbacks unwind in reverse and may replace the error, operation hooks see the chosen
// operation. Fakes only: the transports' integration tests cover the real plugins end to end.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from 'graphql';
import type { ApiPlugin } from '../../src/api/plugin-types.ts';
import { createAdmission } from '../../src/api/plugins.ts';
import { resolvers } from '../../src/api/resolvers/index.ts';
import { buildExecutableSchema } from '../../src/api/schema.ts';
import type { ApiDeps } from '../../src/api/types.ts';
import { AppError } from '../../src/shared/errors.ts';
import { logger } from '../../src/shared/logger.ts';
import { ApiKeyCache } from '../../src/tenancy/key-cache.ts';

const schema = buildExecutableSchema(resolvers);
const deps = {
  prisma: {} as ApiDeps['prisma'],
  keyCache: new ApiKeyCache(),
  log: logger.child({ level: 'silent' }),
} as ApiDeps;
const principal = { tenantId: 't1', keyId: 'k1', scopes: ['*'], ratePerMinute: 60 };
const req = {
  transport: 'http' as const,
  phase: 'operation' as const,
  authorization: 'Bearer x',
  clientAddress: '192.0.2.1',
  requestId: 'r1',
};

test('admit runs the hooks in order and unwinds their done callbacks in reverse', async () => {
  const seen: string[] = [];
  const step = (name: string, act?: (s: { principal?: unknown }) => void): ApiPlugin => ({
    name,
    onAdmit(state) {
      seen.push(`${name}:admit`);
      act?.(state);
      return ({ error }) => {
        seen.push(`${name}:done:${error ? 'error' : 'ok'}`);
      };
    },
  });
  const a = createAdmission(deps, schema, {}, [
    step('first'),
    step('auth', (s) => {
      s.principal = principal;
    }),
  ]);
  const ctx = await a.admit(req);
  assert.equal(ctx.tenantId, 't1');
  assert.equal(ctx.transport, 'http');
  assert.equal(ctx.ratePerMinute, 60);
  assert.deepEqual(seen, ['first:admit', 'auth:admit', 'auth:done:ok', 'first:done:ok']);
  a.close();
});

test('a refusal stops later hooks; a done callback may replace the error; no principal is UNAUTHENTICATED', async () => {
  let laterRan = false;
  const a = createAdmission(deps, schema, {}, [
    {
      name: 'rewrite',
      onAdmit:
        () =>
        ({ error }) => {
          if (error instanceof AppError && error.code === 'UNAUTHENTICATED')
            throw new AppError('RATE_LIMITED', 'slow down', { details: { retryAfter: 7 } });
        },
    },
    {
      name: 'refuse',
      onAdmit() {
        throw new AppError('UNAUTHENTICATED', 'no');
      },
    },
    {
      name: 'later',
      onAdmit() {
        laterRan = true;
      },
    },
  ]);
  await assert.rejects(a.admit(req), (e) => e instanceof AppError && e.code === 'RATE_LIMITED');
  assert.equal(laterRan, false);
  const none = createAdmission(deps, schema, {}, [{ name: 'nothing' }]);
  await assert.rejects(none.admit(req), (e) => e instanceof AppError && e.code === 'UNAUTHENTICATED');
  a.close();
  none.close();
});

test('checkOperation picks the named operation, refuses an ambiguous document, and runs the hooks', async () => {
  const ops: string[] = [];
  const a = createAdmission(deps, schema, {}, [
    {
      name: 'auth',
      onAdmit(s) {
        s.principal = principal;
      },
    },
    { name: 'see', onOperation: (_ctx, op) => void ops.push(`${op.transport}:${op.operation.name?.value}`) },
  ]);
  const ctx = await a.admit(req);
  const doc = parse('query A { models { id } } query B { models { id } }');
  assert.equal((await a.checkOperation(ctx, doc, 'B')).name?.value, 'B');
  assert.deepEqual(ops, ['http:B']);
  await assert.rejects(
    a.checkOperation(ctx, doc),
    (e) => e instanceof AppError && e.code === 'BAD_USER_INPUT',
  );
  await assert.rejects(a.checkOperation(ctx, doc, 'C'), /no operation named "C"/);
  a.close();
});

test('plugin validation rules join graphql’s own in the cached document check', () => {
  const a = createAdmission(deps, schema);
  assert.deepEqual(a.checkDocument('{ models { id } }').errors, []);
  const many = `{ ${Array.from({ length: 300 }, (_, i) => `v${i}: viewer { tenant { id } }`).join(' ')} }`;
  assert.match(a.checkDocument(many).errors[0]?.message ?? '', /reads the database 300 times/);
  a.close();
});
