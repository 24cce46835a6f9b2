// The API benchmark end to end at a tiny budget: every figure is measured and plausible.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runApiBench } from '../../src/bench/api-bench.ts';
import { API_FIGURE_KEYS } from '../../src/bench/report.ts';

test('runApiBench reports enqueue/query latency, throughput, overhead, floors and subscriber delay', {
  timeout: 240_000,
}, async () => {
  const lines: string[] = [];
  const r = await runApiBench({
    quick: true,
    rounds: 1,
    sliceSeconds: 1,
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
  // The floors ran in the same run, interleaved with the full stack (one log line per variant).
  for (const name of [
    'enqueue floor (job insert + pg-boss send)',
    'enqueue, 10 tenants',
    'bare Apollo, same one-row read',
  ])
    assert.ok(
      lines.some((l) => l.startsWith(`api: ${name} p50`)),
      name,
    );
  assert.ok(r.details.enqueueFloorP50Ms > 0 && r.details.bareReadMeanMs > 0);
  assert.ok(r.enqueueP99Ms10Tenants >= r.details.enqueueP50Ms10Tenants);
});
