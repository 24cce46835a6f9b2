/**
 * The batch gatherer on fakes: composition policy (oldest leads, companions of its key taken
 * round-robin by tenant), one run slot, per-job outcomes, abort while waiting, close.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BatchGatherer, composeBatch, GathererClosedError } from '../../src/jobs/batch-gatherer.ts';

type E = { id: string; tenantId: string; key: string | null };
const e = (id: string, key: string | null = 'k'): E => ({ id, tenantId: id[0], key });
const ids = (xs: { id: string }[]) => xs.map((x) => x.id);

// Arrival order: tenant A floods the queue, then B, C (same key) and D (another key) arrive.
const FLOOD = [e('A1'), e('A2'), e('A3'), e('A4'), e('A5'), e('A6'), e('B1'), e('C1'), e('D1', 'other')];

test('composeBatch: the oldest leads; companions of its key round-robin by tenant, its own tenant last', () => {
  assert.deepEqual(ids(composeBatch(FLOOD, 4)), ['A1', 'B1', 'C1', 'A2']);
  assert.deepEqual(ids(composeBatch(FLOOD, 8)), ['A1', 'B1', 'C1', 'A2', 'A3', 'A4', 'A5', 'A6']);
  // Several jobs per tenant: one per tenant per round, tenants by their oldest waiting job.
  const mixed = [e('A1'), e('A2'), e('B1'), e('B2'), e('B3'), e('C1'), e('C2')];
  assert.deepEqual(ids(composeBatch(mixed, 6)), ['A1', 'B1', 'C1', 'A2', 'B2', 'C2']);
  // A keyless leader runs alone; maxBatch 1 never batches; other keys never join.
  assert.deepEqual(ids(composeBatch([e('A1', null), e('A2', null)], 4)), ['A1']);
  assert.deepEqual(ids(composeBatch(FLOOD, 1)), ['A1']);
  assert.deepEqual(ids(composeBatch([e('E1', 'other'), ...FLOOD], 4)), ['E1', 'D1']);
  assert.deepEqual(composeBatch([], 4), []);
});

/** A gatherer whose batches wait for the test to free the engine and settle them. */
function harness(maxBatch: number, parallel = 1) {
  const batches: { ids: string[]; free: () => void; settle: (r: PromiseSettledResult<void>[]) => void }[] =
    [];
  let notify: (() => void) | undefined;
  const g = new BatchGatherer<E>({
    maxBatch,
    gatherMs: 20,
    parallel,
    run: (items, _key, free) =>
      new Promise((settle) => {
        batches.push({ ids: ids(items), free, settle });
        notify?.();
      }),
  });
  const nextBatch = async (n: number) => {
    while (batches.length < n) await new Promise<void>((r) => (notify = r));
    return batches[n - 1];
  };
  const submit = (x: E, signal = new AbortController().signal) =>
    g.submit({ key: x.key, tenantId: x.tenantId, item: x, signal });
  return { g, batches, nextBatch, submit };
}

const ok = (n: number): PromiseSettledResult<void>[] =>
  Array.from({ length: n }, () => ({ status: 'fulfilled', value: undefined }));

test('gatherer: a flood of one tenant does not fill the batch; one batch at a time; the next starts when the engine is free', async () => {
  const h = harness(4);
  const done = FLOOD.map((x) => h.submit(x));
  const first = await h.nextBatch(1);
  assert.deepEqual(first.ids, ['A1', 'B1', 'C1', 'A2']);
  assert.equal(h.g.waiting, 5);
  // The engine is busy: nothing else starts, however long the rest waited.
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(h.batches.length, 1);
  first.free();
  const second = await h.nextBatch(2);
  assert.deepEqual(second.ids, ['A3', 'A4', 'A5', 'A6']);
  second.free();
  const third = await h.nextBatch(3);
  assert.deepEqual(third.ids, ['D1']);
  // Per-job outcomes: one rejected item fails only its own delivery.
  first.settle([
    { status: 'fulfilled', value: undefined },
    { status: 'rejected', reason: new Error('B1 failed') },
    ...ok(2),
  ]);
  second.settle(ok(4));
  third.settle(ok(1));
  const outcomes = await Promise.allSettled(done);
  assert.deepEqual(
    outcomes.map((o, i) => `${FLOOD[i].id}:${o.status}`),
    [
      'A1:fulfilled',
      'A2:fulfilled',
      'A3:fulfilled',
      'A4:fulfilled',
      'A5:fulfilled',
      'A6:fulfilled',
      'B1:rejected',
      'C1:fulfilled',
      'D1:fulfilled',
    ],
  );
  assert.equal(h.g.waiting, 0);
});

test('gatherer: a keyless job runs alone; an aborted waiting job leaves; close rejects the rest', async () => {
  const h = harness(4);
  const solo = h.submit(e('S1', null));
  assert.deepEqual((await h.nextBatch(1)).ids, ['S1']);
  const leaving = new AbortController();
  const a = h.submit(e('A1'));
  const b = h.submit(e('B1'), leaving.signal);
  const c = h.submit(e('C1'));
  leaving.abort(new Error('lease lost'));
  await assert.rejects(b, /lease lost/);
  assert.equal(h.g.waiting, 2);
  h.batches[0].settle(ok(1));
  await solo;
  h.batches[0].free();
  const second = await h.nextBatch(2);
  assert.deepEqual(second.ids, ['A1', 'C1']);
  second.settle(ok(2));
  await Promise.all([a, c]);
  // Busy engine + waiting jobs, then close: the waiting ones are handed back, none runs.
  const d = h.submit(e('D1'));
  h.g.close();
  await assert.rejects(d, GathererClosedError);
  await assert.rejects(h.submit(e('E1')), GathererClosedError);
  assert.equal(h.batches.length, 2);
});

test('gatherer: a batch waits for a delivery already received and still being checked', async () => {
  const h = harness(4);
  const slow = h.g.arriving(); // received; its database check is slow today
  const a = h.submit(e('A1'));
  // Well past the 20 ms window: the leader still waits for the delivery in hand.
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(h.batches.length, 0);
  const b = h.g.submit({
    key: 'k',
    tenantId: 'B',
    item: e('B1'),
    signal: new AbortController().signal,
    arrived: slow,
  });
  const first = await h.nextBatch(1);
  assert.deepEqual(first.ids, ['A1', 'B1']);
  first.settle(ok(2));
  await Promise.all([a, b]);
  // A received delivery that turns out to have nothing to run releases the wait at once.
  const gone = h.g.arriving();
  const c = h.submit(e('C1'));
  gone();
  first.free();
  const second = await h.nextBatch(2);
  assert.deepEqual(second.ids, ['C1']);
  second.settle(ok(1));
  await c;
});

test('gatherer: the oldest job leads even when a younger delivery finished its checks first', async () => {
  const batches: string[][] = [];
  const g = new BatchGatherer<E>({
    maxBatch: 4,
    gatherMs: 20,
    run: async (items) => {
      batches.push(ids(items));
      return ok(items.length);
    },
  });
  const signal = new AbortController().signal;
  const submit = (x: E, enqueuedAt: number) =>
    g.submit({ key: x.key, tenantId: x.tenantId, enqueuedAt, item: x, signal });
  // The younger job of another key arrives first; the older ones (one key) within the window.
  await Promise.all([submit(e('Y1', 'small'), 3000), submit(e('A1'), 1000), submit(e('B1'), 2000)]);
  assert.deepEqual(batches, [['A1', 'B1'], ['Y1']]);
});
