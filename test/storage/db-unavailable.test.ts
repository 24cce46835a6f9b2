/**
 * Which database errors count as "unavailable, retry" (SERVICE_UNAVAILABLE to clients) and which
 * stay errors about the statement itself. Shapes as Prisma 7 + adapter-pg + pg produce them; the
 * outage tests (test/api/db-outage.test.ts) produce the real ones through a TCP proxy.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatApiError } from '../../src/api/errors.ts';
import { logger } from '../../src/shared/logger.ts';
import { isDatabaseUnavailable } from '../../src/storage/db.ts';

const adapterError = (cause: Record<string, unknown>) =>
  Object.assign(new Error('adapter'), { name: 'DriverAdapterError', cause });
const prismaError = (code: string, message: string, driverCause?: Record<string, unknown>) =>
  Object.assign(new Error(message), {
    name: 'PrismaClientKnownRequestError',
    code,
    meta: driverCause ? { driverAdapterError: adapterError(driverCause) } : undefined,
  });

test('unreachable, silent, overloaded or shutting-down databases are unavailable', () => {
  const cases: [string, unknown][] = [
    [
      'refused (socket)',
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
    ],
    ['refused (adapter kind)', adapterError({ kind: 'DatabaseNotReachable', host: '127.0.0.1', port: 5432 })],
    ['IPv4 and IPv6 refused', new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })])],
    ['reset', adapterError({ kind: 'ConnectionClosed' })],
    ['pool wait / connect timeout', new Error('timeout exceeded when trying to connect')],
    ['silent server', new Error('Query read timeout')],
    ['dropped connection', new Error('Connection terminated unexpectedly')],
    ['statement_timeout (57014)', prismaError('P2010', 'Raw query failed', { originalCode: '57014' })],
    [
      'server shutting down (57P01)',
      adapterError({ kind: 'postgres', code: '57P01', originalCode: '57P01' }),
    ],
    ['too many connections (53300)', adapterError({ kind: 'postgres', code: '53300' })],
    [
      'transaction start wait (P2028)',
      prismaError('P2028', 'Unable to start a transaction in the given time.'),
    ],
    [
      'pool timeout (P2024)',
      prismaError('P2024', 'Timed out fetching a new connection from the connection pool.'),
    ],
    [
      'wrapped in an AppError cause',
      Object.assign(new Error('outer'), { cause: new Error('Query read timeout') }),
    ],
  ];
  for (const [what, e] of cases) assert.equal(isDatabaseUnavailable(e), true, what);
});

test('errors about the statement itself are not', () => {
  const cases: [string, unknown][] = [
    ['unique violation', prismaError('P2010', 'Raw query failed. Code: `23505`.', { originalCode: '23505' })],
    ['record not found', prismaError('P2025', 'No record was found for an update.')],
    ['syntax error', adapterError({ kind: 'postgres', code: '42601', originalCode: '42601' })],
    ['quota check failure', adapterError({ message: 'harmon_quota_exceeded', originalCode: 'P0001' })],
    ['a plain bug', new TypeError("Cannot read properties of undefined (reading 'id')")],
    ['not an error', 'ECONNREFUSED'],
    ['null', null],
  ];
  for (const [what, e] of cases) assert.equal(isDatabaseUnavailable(e), false, what);
});

test('clients see SERVICE_UNAVAILABLE with retryAfter and the request id for those, INTERNAL for the rest', () => {
  const log = logger.child({ test: true, level: 'silent' });
  log.level = 'silent';
  const meta = { log, requestId: 'r-1' };
  const down = formatApiError(new Error('Query read timeout'), meta);
  assert.equal(down.extensions?.code, 'SERVICE_UNAVAILABLE');
  assert.equal(typeof down.extensions?.retryAfter, 'number');
  assert.equal(down.extensions?.requestId, 'r-1');
  assert.doesNotMatch(down.message, /Query read timeout/, 'driver detail is not shown');
  assert.equal(formatApiError(new TypeError('boom'), meta).extensions?.code, 'INTERNAL');
});
