/**
 * A tiny-budget run of the suite's own benchmarks (sampler, describe) on a freshly built tiny
 * model, plus the mapping of the pipeline/API providers with fakes (their real benchmarks are
 * owned and tested elsewhere and are far too slow for npm test).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { formatSummary, getPath, missingKeys, REQUIRED_KEYS } from '../../src/bench/report.ts';
import { type BenchBudget, runBench } from '../../src/bench/run-bench.ts';
import { HARMON_TINY } from '../../src/model/config.ts';
import { buildTinyModel } from '../../src/onnx/tiny.ts';
import { SERVING_GRAPHS, weightBudget } from '../../src/onnx/weight-budget.ts';

const BUDGET: BenchBudget = {
  sampler: { warmup: 0, reps: 2, maxMs: 5_000, tokens: 4 },
  describe: { warmup: 0, reps: 1, maxMs: 5_000, maxTokens: 3 },
};

let dir = '';
let modelDir = '';
before(async () => {
  dir = await mkdtemp(join(os.tmpdir(), 'bench-test-'));
  modelDir = join(dir, 'tiny');
  await buildTinyModel({ outDir: modelDir, seed: 3 });
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('own benchmarks only: every required key present, absent ones null with a reason', async () => {
  const r = await runBench({
    quick: true,
    modelDir,
    budget: BUDGET,
    pipeline: null,
    api: null,
    absentReason: { api: 'no API here' },
  });
  const json = JSON.parse(JSON.stringify(r)); // what --json writes
  assert.deepEqual(missingKeys(json), []);
  for (const k of REQUIRED_KEYS) assert.ok(getPath(json, k) !== undefined, k);

  const s = json.pipeline.fusedVsPerStep.tiny;
  assert.equal(json.pipeline.fusedVsPerStepSpeedup, s.speedup);
  assert.ok(s.speedup > 0 && Number.isFinite(s.speedup));
  assert.equal(s.tokens, 4);
  assert.deepEqual(s.sessionRuns, { fused: 1, perStep: 100 });
  assert.equal(s.outputsEqual, true, `fused and per-step differ by ${s.maxAbsDiff}`);
  assert.ok(s.maxAbsOutput > 0);

  assert.equal(json.describe.headlineVariant, 'tiny');
  assert.ok(json.describe.tokensPerSecond > 0);
  const d = json.describe.configs.tiny;
  assert.ok(d.timeToFirstTokenMs >= d.prefillMs, 'the first token comes after the prefill');
  assert.ok(d.promptTokens > 256 + 64, 'prompt holds the image tokens and buffer');
  assert.ok(d.stageMs.vae_encode > 0 && d.stageMs.decode > 0);

  assert.equal(json.api.enqueueP99Ms, null);
  assert.equal(json.notMeasured['api.enqueueP99Ms'], 'no API here');
  assert.equal(json.pipeline.stageMs, null);
  assert.match(json.notMeasured['pipeline.stageMs'], /not available/);
  assert.equal(json.pipeline.batchThroughputRatio, null);
  assert.match(json.notMeasured['pipeline.batchThroughputRatio'], /not available/);

  for (const k of ['api.enqueueVsFloorP50', 'api.enqueueP99Ms10Tenants', 'api.queryVsBareReadMean']) {
    assert.ok(k in json.api || getPath(json, k) === null, k);
    assert.equal(json.notMeasured[k], 'no API here', k);
  }
  assert.equal(json.targets.length, 8);
  const byKey = Object.fromEntries(json.targets.map((t: { key: string }) => [t.key, t]));
  assert.ok(['met', 'missed'].includes(byKey['pipeline.fusedVsPerStepSpeedup'].status));
  assert.equal(byKey['api.subscriberEventDelayP99Ms'].status, 'not measured');
  assert.equal(byKey['api.enqueueVsFloorP50'].status, 'not measured');
  assert.equal(byKey['api.queryVsBareReadMean'].status, 'not measured');
  assert.equal(byKey['pipeline.jsOverheadShare'].status, 'not measured');
  for (const t of json.targets) assert.ok(t.why.length > 10, `${t.key} says why`);

  // --model: the model section, each request in a fresh process.
  const m = json.model;
  assert.equal(m.variant, 'tiny');
  const weights = weightBudget(HARMON_TINY, 'float32');
  assert.equal(m.weightBytes, weights.uniqueParams * 4);
  assert.ok(m.dirBytes >= weights.dirBytes, 'the directory holds at least the weights as laid out');
  assert.equal(m.dirToWeightRatio, m.dirBytes / m.weightBytes);
  assert.deepEqual(Object.keys(m.generate.load.msByGraph).sort(), [...SERVING_GRAPHS].sort());
  assert.ok(m.generate.load.filesHashed + m.generate.load.filesByMarker > 0);
  assert.equal(m.generate.size, 256);
  assert.ok(m.generate.stageMs.vae_decode > 0 && m.generate.totalMs > 0);
  assert.ok(m.generate.peakRssMb > 50 && m.describe.peakRssMb > 50);
  assert.equal(m.generate.peakRssToWeightRatio, (m.generate.peakRssMb * 2 ** 20) / m.weightBytesFp32);
  assert.ok(m.describe.timeToFirstTokenMs > 0 && m.describe.stageMs.prefill > 0);

  assert.ok(json.machine.cpus >= 1 && json.machine.nodeVersion.startsWith('v'));
  assert.match(json.machine.onnxruntimeVersion, /^\d+\.\d+\.\d+/);
  assert.match(json.machine.revision, /^[0-9a-f]{12}(\+dirty)?$/, 'the code measured is named');
  assert.ok(json.memory.peakRssMb > 50);
  assert.ok(json.measurements.length >= 5);
});

test('provider figures land under pipeline/api and drive the target checks', async () => {
  const r = await runBench({
    quick: false,
    modelDir,
    budget: { ...BUDGET, sampler: { ...BUDGET.sampler, reps: 1 } },
    pipeline: async ({ modelDirs }) => {
      assert.deepEqual(Object.keys(modelDirs), ['tiny']);
      return {
        configs: [
          {
            variant: 'tiny',
            size: 64,
            steps: 8,
            stageMs: { prefill: 2, mar: 30 },
            totalMs: 40,
            jsOverheadShare: 0.05,
            sessionRunsPerImage: 36,
          },
        ],
        batchThroughput: {
          variant: 'small',
          size: 256,
          steps: 4,
          repetitions: 3,
          rowTokenBudget: 2176,
          bySize: {
            '8': {
              jobs: 8,
              batchedMs: 4000,
              sequentialMs: 6000,
              batchedImagesPerSecond: 2,
              sequentialImagesPerSecond: 8 / 6,
              ratio: 1.5,
              lmRuns: 13,
            },
          },
          ratio: 1.5,
          unbounded: { ratio: 1.6, batchedMs: 3750, lmRuns: 5 },
          loadAverage: { before: [1, 1, 1], after: [1, 1, 1] },
        },
      };
    },
    api: async () => ({
      figures: {
        enqueueP50Ms: 4,
        enqueueP99Ms: 12,
        queryP99Ms: 3,
        throughput: 310,
        overheadVsBareApollo: 1.6,
        subscriberEventDelayP99Ms: 40,
        enqueueVsFloorP50: 2.5,
        enqueueP99Ms10Tenants: 9,
        queryVsBareReadMean: 1.2,
        details: { enqueueRate: 300, enqueueFloorP50Ms: 1.6, queryMeanMs: 2.4, bareReadMeanMs: 2 },
      },
    }),
  });
  assert.equal(r.pipeline.headlineVariant, 'tiny');
  assert.deepEqual(r.pipeline.stageMs, { prefill: 2, mar: 30 });
  assert.equal(r.pipeline.sessionRunsPerImage, 36);
  assert.equal(r.pipeline.batchThroughputRatio, 1.5);
  assert.equal(r.pipeline.batchThroughput?.bySize['8'].lmRuns, 13);
  assert.equal(r.notMeasured['pipeline.batchThroughputRatio'], undefined);
  assert.match(
    formatSummary(r),
    /cross-job batching: small 256², 4 steps.*8 jobs 1\.50×.*without the run bound 1\.60×/,
  );
  assert.equal(r.api.enqueueP99Ms, 12);
  const status = Object.fromEntries(r.targets.map((t) => [t.key, t.status]));
  assert.equal(status['pipeline.sessionRunsPerImage'], 'missed'); // 36 > 3·8 + 10
  assert.equal(status['api.enqueueP99Ms'], 'met');
  assert.equal(status['api.overheadVsBareApollo'], 'missed');
  assert.equal(status['api.subscriberEventDelayP99Ms'], 'met');
  assert.equal(status['api.enqueueVsFloorP50'], 'missed');
  assert.equal(status['api.queryVsBareReadMean'], 'met');
  assert.equal(r.api.enqueueP99Ms10Tenants, 9);
  const floorCheck = r.targets.find((t) => t.key === 'api.enqueueVsFloorP50');
  assert.match(floorCheck?.why ?? '', /p50 4\.00 ms vs the floor's 1\.60 ms/);
  assert.equal(status['pipeline.jsOverheadShare'], 'not measured', 'stated for the small config only');
  assert.equal(r.notMeasured['api.enqueueP99Ms'], undefined);
});

test('a failing provider is reported, not fatal', async () => {
  const r = await runBench({
    quick: true,
    modelDir,
    budget: BUDGET,
    pipeline: async () => {
      throw new Error('boom');
    },
    api: null,
  });
  assert.match(r.notMeasured['pipeline.jsOverheadShare'], /pipeline benchmark failed: boom/);
  assert.ok(r.pipeline.fusedVsPerStepSpeedup !== null);
});
