// Batched token reservation: exact for small limits, never spends more than the shared Postgres
// bucket holds (two "processes" on one bucket), shares one reservation among concurrent takers,
// and drops reserved tokens after the hold time.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { batchedRateLimiter, batchFor } from '../../src/tenancy/rate-batch.ts';
import {
  postgresRateLimiter,
  type ReservingRateLimiter,
  sweepIdleBuckets,
} from '../../src/tenancy/rate-limit.ts';
import { type FreshDatabase, freshDatabase } from '../helpers/pg.ts';

let db: FreshDatabase;
before(async () => {
  db = await freshDatabase();
});
after(() => db.drop());

/** Wraps a limiter and counts its database statements. */
function counting(inner: ReservingRateLimiter) {
  const calls = { reserve: 0, take: 0 };
  const limiter: ReservingRateLimiter = {
    reserve: (k, m, w) => {
      calls.reserve++;
      return inner.reserve(k, m, w);
    },
    take: (k, m, c) => {
      calls.take++;
      return inner.take(k, m, c);
    },
  };
  return { limiter, calls };
}

test('batch size: 1 below 1,200 per minute, a tenth of a second’s refill above, capped', () => {
  assert.equal(batchFor(60), 1);
  assert.equal(batchFor(1199), 1);
  assert.equal(batchFor(1200), 2);
  assert.equal(batchFor(6000), 10);
  assert.equal(batchFor(10_000_000), 100);
  assert.equal(batchFor(10_000_000, 20), 20);
});

test('reserve takes at most the whole tokens available, in one statement', async () => {
  const pg = postgresRateLimiter(db.prisma);
  assert.deepEqual(await pg.reserve('rb:reserve', 5, 3), { granted: 3, available: 5 });
  const r = await pg.reserve('rb:reserve', 5, 3);
  assert.equal(r.granted, 2);
  assert.ok(r.available >= 2 && r.available < 2.1);
  const empty = await pg.reserve('rb:reserve', 5, 3);
  assert.equal(empty.granted, 0);
});

test('small limits stay exact: one shared take per request, the request past the burst refused', async () => {
  const c = counting(postgresRateLimiter(db.prisma));
  const rl = batchedRateLimiter(c.limiter);
  const results = await Promise.all(Array.from({ length: 8 }, () => rl.take('rb:small', 5)));
  assert.equal(results.filter((r) => r.allowed).length, 5);
  const refused = results.find((r) => !r.allowed);
  assert.ok(refused && !refused.allowed && refused.retryAfterSeconds >= 1);
  assert.equal(c.calls.take, 8);
  assert.equal(c.calls.reserve, 0);
});

test('two processes on one bucket never spend more than it holds; limits still trip', async () => {
  // 3,000 per minute: batch 5, refill 50 tokens/s.
  const perMinute = 3000;
  const a = counting(postgresRateLimiter(db.prisma));
  const b = counting(postgresRateLimiter(db.prisma));
  const rlA = batchedRateLimiter(a.limiter);
  const rlB = batchedRateLimiter(b.limiter);
  const started = Date.now();
  const takes = 3400;
  const results = await Promise.all(
    Array.from({ length: takes }, (_, i) => (i % 2 ? rlA : rlB).take('rb:shared', perMinute)),
  );
  const seconds = (Date.now() - started) / 1000;
  const allowed = results.filter((r) => r.allowed).length;
  const refill = Math.ceil(seconds * (perMinute / 60)) + 1;
  assert.ok(allowed <= perMinute + refill, `allowed ${allowed} > ${perMinute} + refill ${refill}`);
  assert.ok(allowed >= perMinute - 2 * batchFor(perMinute), `allowed only ${allowed}`);
  const refused = results.filter((r) => !r.allowed);
  assert.ok(refused.length > 0, 'the limit must trip');
  for (const r of refused) assert.ok(!r.allowed && r.retryAfterSeconds >= 1);
  const statements = a.calls.reserve + b.calls.reserve;
  assert.equal(a.calls.take + b.calls.take, 0);
  assert.ok(statements <= takes / 3, `${statements} reservations for ${takes} takes`);
});

test('concurrent takers share one reservation; unused tokens expire after the hold time', async () => {
  let now = 5_000;
  const c = counting(postgresRateLimiter(db.prisma));
  const rl = batchedRateLimiter(c.limiter, { holdMs: 1000, now: () => now });
  // 6,000 per minute: batch 10.
  const first = await Promise.all(Array.from({ length: 10 }, () => rl.take('rb:hold', 6000)));
  assert.ok(first.every((r) => r.allowed));
  assert.equal(c.calls.reserve, 1);
  assert.ok((await rl.take('rb:hold', 6000)).allowed);
  assert.equal(c.calls.reserve, 2);
  now += 999;
  assert.ok((await rl.take('rb:hold', 6000)).allowed);
  assert.equal(c.calls.reserve, 2, 'still holding 9 tokens');
  now += 1;
  assert.ok((await rl.take('rb:hold', 6000)).allowed);
  assert.equal(c.calls.reserve, 3, 'expired tokens are not used');
});

test('the first takers of a new bucket in two processes cannot both spend the full bucket', async () => {
  // Before buckets were created ahead of the locking statement, FOR UPDATE locked no row for a
  // key seen for the first time, so two concurrent first reservations both saw a full bucket.
  const a = postgresRateLimiter(db.prisma);
  const b = postgresRateLimiter(db.prisma);
  for (let i = 0; i < 20; i++) {
    const key = `rb:first:${i}`;
    const [ra, rb] = await Promise.all([a.reserve(key, 10, 10), b.reserve(key, 10, 10)]);
    assert.ok(
      ra.granted + rb.granted <= 10 + 1,
      `key ${i}: granted ${ra.granted} + ${rb.granted} from a bucket of 10`,
    );
  }
});

test('several tokens at once (aliased mutations) are taken all or nothing, batched limiter included', async () => {
  const pg = postgresRateLimiter(db.prisma);
  // Postgres bucket of 10: 6 fit, then 6 more do not and take nothing, then 4 still fit.
  assert.equal((await pg.take('rb:cost', 10, 6)).allowed, true);
  const refused = await pg.take('rb:cost', 10, 6);
  assert.equal(refused.allowed, false);
  assert.ok(!refused.allowed && refused.retryAfterSeconds >= 1);
  assert.equal((await pg.take('rb:cost', 10, 4)).allowed, true);
  assert.equal((await pg.take('rb:cost', 10, 1)).allowed, false);
  // More than the capacity can never be granted.
  assert.equal((await pg.take('rb:cost-big', 10, 11)).allowed, false);
  // The batched limiter hands multi-token takes to the shared bucket (no local pool shortcut).
  const { limiter, calls } = counting(pg);
  const batched = batchedRateLimiter(limiter);
  assert.equal((await batched.take('rb:cost-batched', 6000, 3000)).allowed, true);
  assert.equal(calls.take, 1);
  assert.equal((await batched.take('rb:cost-batched', 6000, 3001)).allowed, false);
  assert.equal(calls.take, 2);
});

test('idle buckets are swept (a missing bucket is a full one); the key works on after the sweep', async () => {
  const limiter = postgresRateLimiter(db.prisma);
  for (let i = 0; i < 3; i++) assert.equal((await limiter.take('sweep:idle', 5)).allowed, true);
  assert.equal((await limiter.take('sweep:busy', 5)).allowed, true);
  await db.prisma.$executeRaw`
    UPDATE "RateLimitBucket" SET "updatedAt" = clock_timestamp() - interval '2 hours' WHERE key = 'sweep:idle'`;
  assert.equal(await sweepIdleBuckets(db.prisma), 1);
  const keys = await db.prisma.$queryRaw<{ key: string }[]>`
    SELECT key FROM "RateLimitBucket" WHERE key LIKE 'sweep:%' ORDER BY key`;
  assert.deepEqual(
    keys.map((k) => k.key),
    ['sweep:busy'],
  );
  // The same limiter (it remembers having created the bucket) starts the key from a full bucket.
  const r = await limiter.reserve('sweep:idle', 5, 5);
  assert.deepEqual(r, { granted: 5, available: 5 });
});
