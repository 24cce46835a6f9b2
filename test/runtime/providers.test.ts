import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { selectExecutionProviders } from '../../src/runtime/providers.ts';
import { ModelRuntime } from '../../src/runtime/sessions.ts';

// This project installs onnxruntime-node without its CUDA libraries (.npmrc skips the download),
// so the CUDA provider is known to the build but cannot run: the case a GPU worker without its
// GPU stack is in.
const ortBin = join(
  dirname(createRequire(import.meta.url).resolve('onnxruntime-node')),
  '../bin/napi-v6',
  process.platform,
  process.arch,
);

test('premise: the CUDA provider library is not installed here', () => {
  assert.ok(existsSync(ortBin), ortBin);
  assert.equal(existsSync(join(ortBin, 'libonnxruntime_providers_cuda.so')), false);
});

test('cpu alone (or nothing) runs on CPU', async () => {
  assert.deepEqual(await selectExecutionProviders(['cpu']), ['cpu']);
  assert.deepEqual(await selectExecutionProviders([]), ['cpu']);
  assert.deepEqual(await selectExecutionProviders([' CPU ']), ['cpu']);
});

test('a requested provider that cannot run is an error naming it and what is available', async () => {
  await assert.rejects(
    selectExecutionProviders(['cuda', 'cpu']),
    (e: Error & { code?: string; details?: Record<string, unknown> }) => {
      assert.equal(e.code, 'EXECUTION_PROVIDER_UNAVAILABLE');
      assert.match(e.message, /execution provider cuda \(.+\) is not available here; available: cpu/);
      assert.match(e.message, /EXECUTION_PROVIDERS=cpu/);
      assert.deepEqual(e.details?.unavailable, ['cuda']);
      assert.deepEqual(e.details?.available, ['cpu']);
      return true;
    },
  );
  await assert.rejects(
    selectExecutionProviders(['nosuch']),
    /nosuch \(not a provider this onnxruntime-node build knows\)/,
  );
});

test('ModelRuntime.open refuses before it reads the model directory', async () => {
  await assert.rejects(ModelRuntime.open('/nonexistent-model-dir', { executionProviders: ['cuda', 'cpu'] }), {
    code: 'EXECUTION_PROVIDER_UNAVAILABLE',
  });
});
