import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkTargets, type TargetInputs } from '../../src/bench/targets.ts';

const base: TargetInputs = {
  jsOverheadShareSmall: 0.02,
  jsOverheadShareTiny: 0.08,
  sessionRunsPerImage: 19,
  steps: 8,
  fusedSpeedupTiny: 1.5,
  fusedSpeedupTinyBest: 1.25,
  fusedMinMsTiny: 20,
  perStepMinMsTiny: 25,
  enqueueP99Ms: 20,
  enqueueRate: 320,
  overheadVsBareApollo: 1.2,
  subscriberEventDelayP99Ms: 40,
  enqueueVsFloorP50: 1.5,
  enqueueP50Ms: 3,
  enqueueFloorP50Ms: 2,
  queryVsBareReadMean: 1.4,
  queryMeanMs: 2.8,
  bareReadMeanMs: 2,
  cpus: 2,
  loadAverage1m: 0.5,
  notMeasured: {},
};
const byKey = (t: TargetInputs) => Object.fromEntries(checkTargets(t).map((c) => [c.key, c]));

test('limits: ≤ for shares, runs, latencies and ratios; ≥ for the sampler speed-up', () => {
  const c = byKey(base);
  assert.equal(c['pipeline.jsOverheadShare'].status, 'met');
  assert.equal(c['pipeline.sessionRunsPerImage'].limit, 34); // 3·8 + 10
  assert.equal(c['pipeline.sessionRunsPerImage'].status, 'met');
  assert.equal(c['pipeline.fusedVsPerStepSpeedup'].status, 'missed');
  assert.equal(c['api.enqueueP99Ms'].status, 'met');
  assert.equal(c['api.overheadVsBareApollo'].status, 'met');
  const worse = byKey({
    ...base,
    sessionRunsPerImage: 35,
    fusedSpeedupTiny: 3,
    overheadVsBareApollo: 1.31,
    subscriberEventDelayP99Ms: 101,
  });
  assert.equal(worse['pipeline.sessionRunsPerImage'].status, 'missed');
  assert.match(worse['pipeline.sessionRunsPerImage'].why, /4\.4 runs per MAR step/);
  assert.equal(worse['pipeline.fusedVsPerStepSpeedup'].status, 'met');
  assert.equal(worse['api.overheadVsBareApollo'].status, 'missed');
  assert.equal(worse['api.subscriberEventDelayP99Ms'].status, 'missed');
});

test('the sampler miss is explained from the fastest runs; noise is named when the best case meets it', () => {
  const why = byKey(base)['pipeline.fusedVsPerStepSpeedup'].why;
  // per step: 25 ms / 100 = 250 µs, fusing removes (25 − 20)/100 ms = 50 µs, 200 µs remain
  assert.match(why, /costs 250 µs, of which fusing removes 50 µs .*the remaining 200 µs/);
  const noisy = byKey({ ...base, fusedSpeedupTinyBest: 3.4, loadAverage1m: 9 })[
    'pipeline.fusedVsPerStepSpeedup'
  ].why;
  assert.match(noisy, /fastest runs of each give 3\.40×/);
  assert.match(noisy, /oversubscribed .*load 9\.0 on 2 CPUs/);
});

test('an enqueue p99 under 25 ms still misses when measured below 300 req/s', () => {
  const c = byKey({ ...base, enqueueRate: 70 })['api.enqueueP99Ms'];
  assert.equal(c.status, 'missed');
  assert.match(c.why, /at 70 req\/s, below the 300 req\/s/);
});

test('the floor ratios of issue #12: ≤ 2× for enqueue p50, ≤ 1.5× for the job query mean, with both figures in why', () => {
  const c = byKey(base);
  assert.equal(c['api.enqueueVsFloorP50'].status, 'met');
  assert.equal(c['api.enqueueVsFloorP50'].limit, 2);
  assert.match(c['api.enqueueVsFloorP50'].why, /1\.50× \(p50 3\.00 ms vs the floor's 2\.00 ms\)/);
  assert.equal(c['api.queryVsBareReadMean'].status, 'met');
  assert.equal(c['api.queryVsBareReadMean'].limit, 1.5);
  const worse = byKey({ ...base, enqueueVsFloorP50: 2.01, queryVsBareReadMean: 1.51, loadAverage1m: 7 });
  assert.equal(worse['api.enqueueVsFloorP50'].status, 'missed');
  assert.match(worse['api.enqueueVsFloorP50'].why, /quota statement/);
  assert.match(worse['api.enqueueVsFloorP50'].why, /oversubscribed .*load 7\.0 on 2 CPUs/);
  assert.equal(worse['api.queryVsBareReadMean'].status, 'missed');
  const none = byKey({
    ...base,
    queryVsBareReadMean: null,
    notMeasured: { 'api.queryVsBareReadMean': 'the API benchmark failed: x' },
  });
  assert.equal(none['api.queryVsBareReadMean'].status, 'not measured');
  assert.equal(none['api.queryVsBareReadMean'].why, 'the API benchmark failed: x');
});

test('missing figures are "not measured" with the recorded reason', () => {
  const c = byKey({
    ...base,
    subscriberEventDelayP99Ms: null,
    jsOverheadShareSmall: null,
    notMeasured: { 'api.subscriberEventDelayP99Ms': 'Postgres was down' },
  });
  assert.equal(c['api.subscriberEventDelayP99Ms'].status, 'not measured');
  assert.equal(c['api.subscriberEventDelayP99Ms'].why, 'Postgres was down');
  assert.equal(c['pipeline.jsOverheadShare'].status, 'not measured');
  assert.match(c['pipeline.jsOverheadShare'].why, /tiny config it was 8\.0 %/);
});
