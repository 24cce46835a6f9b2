import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cfgScales, maskSchedule } from '../../src/harmon/mask-schedule.ts';
import { AppError } from '../../src/shared/errors.ts';

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

// Spec §2.7, copied verbatim: masked count after steps k = 0..62.
const MNEXT_1024 = [
  1023, 1022, 1021, 1019, 1016, 1012, 1008, 1004, 999, 993, 986, 979, 972, 964, 955, 946, 936, 925, 914, 903,
  890, 878, 865, 851, 837, 822, 807, 791, 775, 758, 741, 724, 706, 687, 668, 649, 629, 609, 589, 568, 547,
  526, 504, 482, 460, 437, 414, 391, 368, 344, 321, 297, 273, 248, 224, 199, 175, 150, 125, 100, 75, 50, 25,
];
const PRED_1024 = [
  1, 1, 1, 2, 3, 4, 4, 4, 5, 6, 7, 7, 7, 8, 9, 9, 10, 11, 11, 11, 13, 12, 13, 14, 14, 15, 15, 16, 16, 17, 17,
  17, 18, 19, 19, 19, 20, 20, 20, 21, 21, 21, 22, 22, 22, 23, 23, 23, 23, 24, 23, 24, 24, 25, 24, 25, 24, 25,
  25, 25, 25, 25, 25, 25,
];
const MNEXT_256 = [
  255, 254, 253, 252, 251, 250, 249, 248, 247, 246, 245, 244, 243, 241, 238, 236, 234, 231, 228, 225, 222,
  219, 216, 212, 209, 205, 201, 197, 193, 189, 185, 181, 176, 171, 167, 162, 157, 152, 147, 142, 136, 131,
  126, 120, 115, 109, 103, 97, 92, 86, 80, 74, 68, 62, 56, 49, 43, 37, 31, 25, 18, 12, 6,
];

test('N = 1024, T = 64 reproduces the spec check values', () => {
  const s = maskSchedule(1024, 64);
  assert.deepEqual(s.maskedAfter.slice(0, 63), MNEXT_1024);
  assert.equal(s.maskedAfter[63], 1); // clamped value kept for the linear CFG schedule
  assert.deepEqual(s.predicted, PRED_1024);
  assert.equal(s.predicted[63], 25); // last step: all remaining
  assert.equal(sum(s.predicted), 1024);
  assert.equal(sum(s.visible.map((v) => 64 + v)), 27_432);
  assert.equal(s.visible[0], 0);
  assert.equal(s.visible[1], 1024 - 1023);
});

test('N = 256, T = 64 reproduces the spec check values (early clamp active)', () => {
  const s = maskSchedule(256, 64);
  assert.deepEqual(s.maskedAfter.slice(0, 63), MNEXT_256);
  assert.equal(s.maskedAfter[1], 254); // floor(255.69) = 255 clamped to Mcnt - 1
  assert.equal(s.predicted[63], 6);
  assert.equal(sum(s.predicted), 256);
  assert.ok(s.predicted.every((p) => p >= 1));
});

test('T = 8 values', () => {
  // floor(N cos(pi/2 (k+1)/8)) for N = 1024: 1004, 946, 851, 724, 568, 391, 199, (last)
  const a = maskSchedule(1024, 8);
  assert.deepEqual(a.maskedAfter, [1004, 946, 851, 724, 568, 391, 199, 1]);
  assert.deepEqual(a.predicted, [20, 58, 95, 127, 156, 177, 192, 199]);
  // N = 16 (64 px): 15.69 -> 15, 14.78 -> 14, 13.30 -> 13, 11.31 -> 11, 8.89 -> 8, 6.12 -> 6, 3.12 -> 3
  const b = maskSchedule(16, 8);
  assert.deepEqual(b.maskedAfter, [15, 14, 13, 11, 8, 6, 3, 1]);
  assert.deepEqual(b.predicted, [1, 1, 1, 2, 3, 2, 3, 3]);
  assert.deepEqual(b.visible, [0, 1, 2, 3, 5, 8, 10, 13]);
});

test('every (N, T) with T <= N predicts every token exactly once, at least one per step', () => {
  for (const n of [1, 2, 3, 16, 64, 100, 256]) {
    for (let t = 1; t <= Math.min(n, 70); t++) {
      const s = maskSchedule(n, t);
      assert.equal(sum(s.predicted), n, `N=${n} T=${t}`);
      assert.ok(
        s.predicted.every((p) => p >= 1),
        `N=${n} T=${t}`,
      );
      for (let k = 1; k < t; k++) assert.equal(s.maskedBefore[k], s.maskedAfter[k - 1]);
    }
  }
  assert.deepEqual(maskSchedule(256, 1).predicted, [256]);
});

test('bad step counts are coded errors', () => {
  for (const [n, t] of [
    [256, 0],
    [256, 257],
    [256, 2.5],
    [0, 1],
  ]) {
    assert.throws(
      () => maskSchedule(n, t),
      (e: unknown) => e instanceof AppError && e.code === 'BAD_USER_INPUT',
    );
  }
});

test('CFG schedules', () => {
  const s = maskSchedule(1024, 64);
  assert.deepEqual(cfgScales('constant', 3, s), new Array(64).fill(3));
  const lin = cfgScales('linear', 3, s);
  assert.equal(lin[0], 1 + (2 * 1) / 1024);
  assert.equal(lin[62], 1 + (2 * (1024 - 25)) / 1024);
  assert.equal(lin[63], 1 + (2 * 1023) / 1024); // slightly below cfg
  for (let k = 1; k < 64; k++) assert.ok(lin[k] >= lin[k - 1]);
  assert.ok(cfgScales('linear', 1, s).every((x) => x === 1));
  assert.throws(() => cfgScales('cosine' as 'linear', 3, s), AppError);
});
