import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { CPU_MAX_BATCH, GPU_MAX_BATCH, loadConfig } from '../../src/config/config.ts';
import { AppError } from '../../src/shared/errors.ts';

test('no environment gives the embedded defaults', () => {
  const c = loadConfig({});
  assert.equal(c.port, 4000);
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.harmonHome, resolve('./.harmon'));
  assert.equal(c.databaseUrl, undefined);
  assert.equal(c.s3, undefined);
  assert.equal(c.queue.backend, 'postgres');
  assert.equal(c.presignTtlSeconds, 900);
  assert.equal(c.maxUploadBytes, 10 * 1024 * 1024);
  assert.deepEqual(c.executionProviders, ['cpu']);
  assert.deepEqual(c.modelDirs, []);
  assert.equal(c.workerMaxBatch, CPU_MAX_BATCH);
});

test('WORKER_MAX_BATCH: default by execution provider, an integer >= 1 when set', () => {
  assert.equal(loadConfig({ EXECUTION_PROVIDERS: 'cuda,cpu' }).workerMaxBatch, GPU_MAX_BATCH);
  assert.equal(loadConfig({ EXECUTION_PROVIDERS: 'cpu' }).workerMaxBatch, CPU_MAX_BATCH);
  assert.equal(loadConfig({ WORKER_MAX_BATCH: '1', EXECUTION_PROVIDERS: 'cuda' }).workerMaxBatch, 1);
  assert.equal(loadConfig({ WORKER_MAX_BATCH: '16' }).workerMaxBatch, 16);
  assert.equal(loadConfig({ WORKER_MAX_BATCH: '' }).workerMaxBatch, CPU_MAX_BATCH);
  for (const bad of ['0', '-2', '2.5', 'eight', '1000']) {
    assert.throws(
      () => loadConfig({ WORKER_MAX_BATCH: bad }),
      (e: unknown) =>
        e instanceof AppError &&
        e.code === 'BAD_CONFIG' &&
        ((e.details?.variables as string[] | undefined) ?? []).includes('WORKER_MAX_BATCH'),
      bad,
    );
  }
});

test('real services and lists are parsed', () => {
  const c = loadConfig({
    PORT: '8080',
    DATABASE_URL: 'postgresql://u:p@db:5432/harmon',
    S3_ENDPOINT: 'http://minio:9000',
    S3_BUCKET: 'b',
    S3_ACCESS_KEY_ID: 'k',
    S3_SECRET_ACCESS_KEY: 's',
    HARMON_MODEL: '/models/a, /models/b',
    EXECUTION_PROVIDERS: 'cuda,cpu',
    QUEUE_BACKEND: 'sqs',
    SQS_QUEUE_URL: 'https://sqs.example/q',
    S3_FORCE_PATH_STYLE: 'false',
    PRESIGN_TTL_SECONDS: '60',
  });
  assert.equal(c.port, 8080);
  assert.equal(c.databaseUrl, 'postgresql://u:p@db:5432/harmon');
  assert.deepEqual(c.s3, {
    endpoint: 'http://minio:9000',
    bucket: 'b',
    region: 'us-east-1',
    accessKeyId: 'k',
    secretAccessKey: 's',
    forcePathStyle: false,
  });
  assert.deepEqual(c.modelDirs, ['/models/a', '/models/b']);
  assert.deepEqual(c.executionProviders, ['cuda', 'cpu']);
  assert.equal(c.queue.backend, 'sqs');
  assert.equal(c.presignTtlSeconds, 60);
  // A bucket without an endpoint means AWS S3 itself (virtual-hosted style).
  assert.equal(loadConfig({ S3_BUCKET: 'b' }).s3?.forcePathStyle, false);
  // Empty strings count as unset (common in .env files and CI).
  assert.equal(loadConfig({ DATABASE_URL: '' }).databaseUrl, undefined);
});

test('every bad variable is named in one BAD_CONFIG error', () => {
  try {
    loadConfig({
      DATABASE_URL: 'notaurl',
      PORT: 'abc',
      QUEUE_BACKEND: 'kafka',
      S3_FORCE_PATH_STYLE: 'maybe',
      SQS_ENDPOINT: 'ftp://x',
    });
    assert.fail('expected BAD_CONFIG');
  } catch (e) {
    assert.ok(e instanceof AppError);
    assert.equal(e.code, 'BAD_CONFIG');
    for (const v of ['DATABASE_URL', 'PORT', 'QUEUE_BACKEND', 'S3_FORCE_PATH_STYLE', 'SQS_ENDPOINT'])
      assert.match(e.message, new RegExp(v));
    assert.deepEqual(
      new Set(e.details?.variables as string[]),
      new Set(['DATABASE_URL', 'PORT', 'QUEUE_BACKEND', 'S3_FORCE_PATH_STYLE', 'SQS_ENDPOINT']),
    );
    assert.ok(!e.message.includes('\n'));
  }
});

test('cross-variable rules', () => {
  assert.throws(() => loadConfig({ S3_ENDPOINT: 'http://x:9000' }), /S3_BUCKET is required/);
  assert.throws(() => loadConfig({ QUEUE_BACKEND: 'sqs' }), /SQS_QUEUE_URL is required/);
  assert.throws(() => loadConfig({ PORT: '70000' }), /PORT/);
});
