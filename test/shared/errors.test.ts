import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AppError, exitCodeFor } from '../../src/shared/errors.ts';

test('AppError keeps code, details and cause', () => {
  const cause = new Error('root');
  const e = new AppError('BAD_USER_INPUT', 'steps must be >= 1', { cause, details: { field: 'steps' } });
  assert.equal(e.code, 'BAD_USER_INPUT');
  assert.equal(e.cause, cause);
  assert.deepEqual(e.details, { field: 'steps' });
});

test('exit codes separate bad input, bad config and bad model', () => {
  assert.equal(exitCodeFor(new AppError('BAD_USER_INPUT', 'x')), 2);
  assert.equal(exitCodeFor(new AppError('BAD_CONFIG', 'x')), 3);
  assert.equal(exitCodeFor(new AppError('WEIGHTS_INVALID', 'x')), 4);
  assert.equal(exitCodeFor(new Error('x')), 1);
});
