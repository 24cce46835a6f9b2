// The API benchmark end to end at a tiny budget: every figure is measured and plausible.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runApiBench } from '../../src/bench/api-bench.ts';
import { API_FIGURE_KEYS } from '../../src/bench/report.ts';

test('runApiBench reports enqueue/query latency, throughput, overhead and subscriber delay', {
  timeout: 90_000,
}, async () => {
  const lines: string[] = [];
  const r = await runApiBench({
    quick: true,
    durationSeconds: 1,
    subscribers: 50,
    log: (l) => lines.push(l),
  });
  for (const k of API_FIGURE_KEYS) {
    assert.ok(Number.isFinite(r[k]) && r[k] >= 0, `${k} = ${r[k]}`);
  }
  assert.ok(r.enqueueP99Ms >= r.enqueueP50Ms);
  assert.ok(r.throughput > 0);
  // Auth, rate limit and Postgres cost something: the full stack cannot beat constant resolvers.
  assert.ok(r.overheadVsBareApollo > 1, `overhead ${r.overheadVsBareApollo}`);
  assert.equal(r.details.subscribers, 50);
  assert.ok(lines.some((l) => l.includes('event delay')));
});
