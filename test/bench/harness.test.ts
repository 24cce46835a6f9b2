import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatTable, measure, measurementOf, percentile, summarize } from '../../src/bench/harness.ts';

test('median of an odd and an even sample set, unsorted input', () => {
  assert.equal(percentile([5, 1, 3], 0.5), 3);
  assert.equal(percentile([4, 1, 3, 2], 0.5), 2.5);
  assert.equal(summarize([7]).median, 7);
});

test('p90 interpolates between closest ranks (numpy default)', () => {
  const xs = [10, 9, 8, 7, 6, 5, 4, 3, 2, 1];
  // rank (10−1)·0.9 = 8.1 → 9 + 0.1·(10 − 9)
  assert.ok(Math.abs(percentile(xs, 0.9) - 9.1) < 1e-12);
  assert.equal(percentile(xs, 0), 1);
  assert.equal(percentile(xs, 1), 10);
  const s = summarize([1, 2, 3, 4, 100]);
  assert.deepEqual(
    { ...s, p90: Math.round(s.p90 * 1e9) / 1e9 },
    { n: 5, median: 3, p90: 61.6, min: 1, max: 100, mean: 22 },
  );
});

test('statistics refuse empty samples and bad ranks', () => {
  assert.throws(() => summarize([]), /zero samples/);
  assert.throws(() => percentile([1], 1.5), /rank/);
});

test('measure runs warm-up untimed, then the asked repetitions', async () => {
  const calls: number[] = [];
  const m = await measure(
    'x',
    (rep) => {
      calls.push(rep);
      return rep >= 0 ? 10 + rep : 999; // own samples: 10, 11, 12
    },
    { warmup: 2, reps: 3 },
  );
  assert.deepEqual(calls, [-1, -2, 0, 1, 2]);
  assert.deepEqual(m.samples, [10, 11, 12]);
  assert.equal(m.median, 11);
  assert.equal(m.warmup, 2);
  assert.equal(m.truncated, false);
});

test('measure stops at the wall-clock budget but always takes one sample', async () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const t0 = performance.now();
  const m = await measure('slow', () => sleep(30), { warmup: 0, reps: 1000, maxMs: 100 });
  assert.ok(performance.now() - t0 < 1000, 'bounded by the budget');
  assert.ok(m.n >= 1 && m.n < 1000);
  assert.equal(m.truncated, true);
  assert.ok(m.min >= 25, `wall time measured, got ${m.min}`);
  const one = await measure('over', () => sleep(20), { warmup: 3, reps: 5, maxMs: 1 });
  assert.equal(one.n, 1);
});

test('table shows median, p90 and min–max per row and marks truncated rows', () => {
  const a = measurementOf('alpha', [1, 2, 3]);
  const b = { ...measurementOf('beta', [100, 200]), truncated: true };
  const t = formatTable([a, b]);
  const lines = t.split('\n');
  assert.match(lines[0], /benchmark\s+n\s+median\s+p90\s+min–max\s+unit/);
  assert.match(lines[2], /^alpha\s+3\s+2\.00\s+2\.80\s+1\.00–3\.00\s+ms/);
  assert.match(lines[3], /^beta\s+2\*\s+150\.0\s+190\.0\s+100\.0–200\.0/);
  assert.match(t, /wall-clock budget/);
});
