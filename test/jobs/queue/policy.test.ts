import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createJobQueue, type QueueBackendOptions } from '../../../src/jobs/queue/create-queue.ts';
import {
  MAX_RETRY_DELAY_SECONDS,
  retryDelaySeconds,
  validatePolicy,
} from '../../../src/jobs/queue/policy.ts';
import { DEFAULT_QUEUE_POLICY } from '../../../src/jobs/queue/port.ts';
import { AppError } from '../../../src/shared/errors.ts';

test('retry delay follows the pg-boss curve: base * 2^attempt / 2 * (1 + jitter), capped', () => {
  const p = { retryDelaySeconds: 10, retryBackoff: true };
  assert.equal(
    retryDelaySeconds(p, 1, () => 0),
    10,
  );
  assert.equal(
    retryDelaySeconds(p, 1, () => 1),
    20,
  );
  assert.equal(
    retryDelaySeconds(p, 3, () => 0),
    40,
  );
  assert.equal(
    retryDelaySeconds(p, 3, () => 0.5),
    60,
  );
  assert.equal(
    retryDelaySeconds(p, 40, () => 1),
    MAX_RETRY_DELAY_SECONDS,
    'capped at the SQS maximum',
  );
  assert.equal(
    retryDelaySeconds({ retryDelaySeconds: 7, retryBackoff: false }, 5),
    7,
    'constant without backoff',
  );
  assert.equal(retryDelaySeconds({ retryDelaySeconds: 0, retryBackoff: true }, 5), 0);
});

test('policy validation rejects values a backend would refuse', () => {
  validatePolicy(DEFAULT_QUEUE_POLICY);
  for (const bad of [
    { maxAttempts: 0 },
    { maxAttempts: 1.5 },
    { visibilityTimeoutSeconds: 0 },
    { visibilityTimeoutSeconds: 43_201 },
    { retryDelaySeconds: -1 },
  ]) {
    assert.throws(
      () => validatePolicy({ ...DEFAULT_QUEUE_POLICY, ...bad }),
      (e: unknown) => e instanceof AppError && e.code === 'BAD_CONFIG',
      JSON.stringify(bad),
    );
  }
});

test('createJobQueue refuses an unknown backend and a bad pg-boss schema name', () => {
  assert.throws(
    () => createJobQueue({ backend: 'redis' } as unknown as QueueBackendOptions),
    (e: unknown) => e instanceof AppError && e.code === 'BAD_CONFIG' && /redis/.test(e.message),
  );
  assert.throws(
    () => createJobQueue({ backend: 'postgres', connectionString: 'postgres://x', schema: 'bad;drop' }),
    (e: unknown) => e instanceof AppError && e.code === 'BAD_CONFIG',
  );
});
