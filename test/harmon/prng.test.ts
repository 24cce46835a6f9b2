import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../src/harmon/prng.ts';
import { AppError } from '../../src/shared/errors.ts';

test('xoshiro128** core matches the published vector for state {1,2,3,4}', () => {
  const r = Rng.fromRawState([1, 2, 3, 4]);
  assert.deepEqual(
    Array.from({ length: 6 }, () => r.nextUint32()),
    [11520, 0, 5927040, 70819200, 2031721883, 1637235492],
  );
});

test('golden first values for seed 42 (any change here changes every generated image)', () => {
  const a = Rng.fromSeed(42);
  assert.deepEqual(
    Array.from({ length: 4 }, () => a.nextUint32()),
    [2330561909, 3717467085, 2412195004, 1239923710],
  );
  assert.deepEqual(
    Array.from(Rng.fromSeed(42).uniform(3)),
    [0.5426262021064758, 0.8655402064323425, 0.5616328716278076],
  );
  assert.deepEqual(
    Array.from(Rng.fromSeed(42).normal(4)),
    [-1.158182144165039, -0.4723588526248932, -0.14061015844345093, 0.09018365293741226],
  );
  assert.deepEqual(Array.from(Rng.fromSeed(42).fork('order', 0).permutation(8)), [6, 3, 1, 4, 7, 2, 0, 5]);
  assert.deepEqual(
    Array.from(Rng.fromSeed(0).fork('noise', 3).normal(2)),
    [0.2660135328769684, 0.757455587387085],
  );
});

test('same seed repeats, different seeds and different forks differ', () => {
  const draw = (r: Rng) => Array.from(r.uniform(8));
  assert.deepEqual(draw(Rng.fromSeed(7)), draw(Rng.fromSeed(7)));
  assert.notDeepEqual(draw(Rng.fromSeed(7)), draw(Rng.fromSeed(8)));
  const root = Rng.fromSeed(7);
  assert.notDeepEqual(draw(root.fork('noise', 0)), draw(root.fork('noise', 1)));
  assert.notDeepEqual(draw(root.fork('noise', 0)), draw(root.fork('order', 0)));
  assert.notDeepEqual(draw(root.fork('ab')), draw(root.fork('a', 98))); // 'b' = 98: paths are length-prefixed
  assert.notDeepEqual(draw(root.fork('n', 1, 2)), draw(root.fork('n', 2, 1)));
  // Large seeds use the high bits too.
  assert.notDeepEqual(draw(Rng.fromSeed(2 ** 40)), draw(Rng.fromSeed(0)));
});

test('forks do not depend on draws made by the parent or siblings', () => {
  const a = Rng.fromSeed(123);
  const b = Rng.fromSeed(123);
  b.uniform(1000);
  b.fork('order').permutation(50);
  assert.deepEqual(Array.from(a.fork('noise', 5).normal(16)), Array.from(b.fork('noise', 5).normal(16)));
  assert.deepEqual(
    Array.from(a.fork('x').fork('y', 2).uniform(4)),
    Array.from(b.fork('x').fork('y', 2).uniform(4)),
  );
});

test('uniform values lie in [0, 1) and have mean 1/2', () => {
  const u = Rng.fromSeed(1).uniform(100_000);
  let sum = 0;
  for (const x of u) {
    assert.ok(x >= 0 && x < 1);
    sum += x;
  }
  assert.ok(Math.abs(sum / u.length - 0.5) < 0.005);
  for (let i = 0; i < 1000; i++) {
    const f = Rng.fromSeed(i).nextFloat64();
    assert.ok(f >= 0 && f < 1);
  }
});

test('normals have mean ~0, std ~1 and a normal tail mass', () => {
  const n = 100_000;
  const z = Rng.fromSeed(2).normal(n);
  let s = 0;
  let s2 = 0;
  let beyond2 = 0;
  for (const x of z) {
    assert.ok(Number.isFinite(x));
    s += x;
    s2 += x * x;
    if (Math.abs(x) > 2) beyond2++;
  }
  const mean = s / n;
  const std = Math.sqrt(s2 / n - mean * mean);
  assert.ok(Math.abs(mean) < 0.015, `mean ${mean}`);
  assert.ok(Math.abs(std - 1) < 0.015, `std ${std}`);
  assert.ok(Math.abs(beyond2 / n - 0.0455) < 0.004, `P(|z|>2) = ${beyond2 / n}`);
  assert.equal(Rng.fromSeed(2).normal(5).length, 5); // odd length works
});

test('permutation is a permutation and roughly uniform', () => {
  const p = Rng.fromSeed(3).permutation(1024);
  assert.deepEqual(
    [...p].sort((a, b) => a - b),
    Array.from({ length: 1024 }, (_, i) => i),
  );
  // Position counts for n = 4 over 24,000 draws: each value lands in each slot ~6,000 times.
  const counts = Array.from({ length: 4 }, () => new Array(4).fill(0));
  const orders = new Map<string, number>();
  const r = Rng.fromSeed(4);
  for (let t = 0; t < 24_000; t++) {
    const q = r.permutation(4);
    q.forEach((v, i) => {
      counts[v][i]++;
    });
    orders.set(q.join(''), (orders.get(q.join('')) ?? 0) + 1);
  }
  for (const row of counts) for (const c of row) assert.ok(Math.abs(c - 6000) < 300, `count ${c}`);
  assert.equal(orders.size, 24); // all 4! orders appear
  for (const c of orders.values()) assert.ok(Math.abs(c - 1000) < 150, `order count ${c}`);
});

test('below() is unbiased for a non power of two and validates its bound', () => {
  const r = Rng.fromSeed(5);
  const c = [0, 0, 0];
  for (let i = 0; i < 30_000; i++) c[r.below(3)]++;
  for (const x of c) assert.ok(Math.abs(x - 10_000) < 400);
  assert.throws(() => r.below(0), AppError);
});

test('bad seeds are rejected with a coded error', () => {
  for (const bad of [-1, 1.5, Number.NaN, 2 ** 53]) {
    assert.throws(
      () => Rng.fromSeed(bad),
      (e: unknown) => e instanceof AppError && e.code === 'BAD_USER_INPUT',
    );
  }
});
