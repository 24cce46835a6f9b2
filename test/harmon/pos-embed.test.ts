import assert from 'node:assert/strict';
import { test } from 'node:test';
import { axisWeights, gridPosTables, resizeGrid } from '../../src/harmon/pos-embed.ts';
import { Rng } from '../../src/harmon/prng.ts';
import { AppError } from '../../src/shared/errors.ts';

const randomTable = (n: number, seed: number) => Rng.fromSeed(seed).normal(n);

/** Independent transcription of spec §2.10: the four-term weighted sum per output cell. */
function specResize(
  P: Float32Array,
  inH: number,
  inW: number,
  D: number,
  outH: number,
  outW: number,
): Float32Array {
  const coord = (i: number, inS: number, outS: number) => {
    let s = (i + 0.5) * (inS / outS) - 0.5;
    if (s < 0) s = 0;
    const a = Math.floor(s);
    return [a, Math.min(a + 1, inS - 1), s - a] as const;
  };
  const out = new Float32Array(outH * outW * D);
  for (let y = 0; y < outH; y++) {
    const [y0, y1, ly] = coord(y, inH, outH);
    for (let x = 0; x < outW; x++) {
      const [x0, x1, lx] = coord(x, inW, outW);
      for (let c = 0; c < D; c++) {
        const at = (yy: number, xx: number) => P[(yy * inW + xx) * D + c];
        out[(y * outW + x) * D + c] =
          (1 - ly) * (1 - lx) * at(y0, x0) +
          (1 - ly) * lx * at(y0, x1) +
          ly * (1 - lx) * at(y1, x0) +
          ly * lx * at(y1, x1);
      }
    }
  }
  return out;
}

function assertClose(a: Float32Array, b: Float32Array, tol = 1e-6) {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs(a[i] - b[i]) <= tol, `index ${i}: ${a[i]} vs ${b[i]}`);
}

test('16 -> 32 axis check values from the spec', () => {
  const w = axisWeights(16, 32);
  const row = (i: number) => [w.i0[i], w.i1[i], w.lambda[i]];
  assert.deepEqual(row(0), [0, 1, 0]);
  assert.deepEqual(row(1), [0, 1, 0.25]);
  assert.deepEqual(row(2), [0, 1, 0.75]);
  assert.deepEqual(row(30), [14, 15, 0.75]);
  assert.deepEqual(row(31), [15, 15, 0.25]);
});

test('identity at 16x16 is an exact copy', () => {
  const P = randomTable(16 * 16 * 5, 1);
  assert.deepEqual(resizeGrid(P, 16, 16, 5, 16, 16), P);
});

test('16 -> 8 averages each 2x2 block (no antialias needed at exact half)', () => {
  const D = 3;
  const P = randomTable(16 * 16 * D, 2);
  const out = resizeGrid(P, 16, 16, D, 8, 8);
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 8; x++) {
      for (let c = 0; c < D; c++) {
        const at = (yy: number, xx: number) => P[(yy * 16 + xx) * D + c];
        const want =
          (at(2 * y, 2 * x) + at(2 * y, 2 * x + 1) + at(2 * y + 1, 2 * x) + at(2 * y + 1, 2 * x + 1)) / 4;
        assert.ok(Math.abs(out[(y * 8 + x) * D + c] - want) < 1e-6);
      }
    }
  }
});

test('16 -> 4 skips rows like PyTorch (no antialias): samples between rows 1,2 / 5,6 / ...', () => {
  const w = axisWeights(16, 4);
  assert.deepEqual([...w.i0], [1, 5, 9, 13]);
  assert.deepEqual([...w.lambda], [0.5, 0.5, 0.5, 0.5]);
});

test('upscale and non-square grids match the spec formula', () => {
  const D = 4;
  const P = randomTable(16 * 16 * D, 3);
  for (const [h, w] of [
    [32, 32],
    [24, 40],
    [8, 32],
    [20, 12],
    [1, 1],
    [17, 16],
  ]) {
    assertClose(resizeGrid(P, 16, 16, D, h, w), specResize(P, 16, 16, D, h, w));
  }
  // Bilinear reproduces a field linear in y exactly away from the clamped border.
  const ramp = new Float32Array(16 * 16).map((_, i) => Math.floor(i / 16));
  const up = resizeGrid(ramp, 16, 16, 1, 32, 32);
  for (let y = 1; y < 31; y++) assert.ok(Math.abs(up[y * 32 + 5] - ((y + 0.5) / 2 - 0.5)) < 1e-6);
  assert.equal(up[0], 0);
  assert.equal(up[31 * 32], 15);
});

test('gridPosTables keeps buffer rows and resizes the grid of all three tables', () => {
  const D = 6;
  const learned = {
    encoder: randomTable((64 + 256) * D, 4),
    decoder: randomTable((64 + 256) * D, 5),
    diffusion: randomTable(256 * D, 6),
  };
  const t = gridPosTables(learned, { dim: D, h: 32, w: 24 });
  assert.equal(t.encoder.length, (64 + 32 * 24) * D);
  assert.equal(t.diffusion.length, 32 * 24 * D);
  assert.deepEqual(t.encoder.subarray(0, 64 * D), learned.encoder.subarray(0, 64 * D));
  assert.deepEqual(t.decoder.subarray(0, 64 * D), learned.decoder.subarray(0, 64 * D));
  assertClose(t.encoder.subarray(64 * D), specResize(learned.encoder.subarray(64 * D), 16, 16, D, 32, 24));
  assertClose(t.decoder.subarray(64 * D), specResize(learned.decoder.subarray(64 * D), 16, 16, D, 32, 24));
  assertClose(t.diffusion, specResize(learned.diffusion, 16, 16, D, 32, 24));
  // Native grid: tables unchanged.
  const n = gridPosTables(learned, { dim: D, h: 16, w: 16 });
  assert.deepEqual(n.encoder, learned.encoder);
  assert.deepEqual(n.diffusion, learned.diffusion);
});

test('wrong table sizes and grids are coded errors', () => {
  const D = 2;
  const ok = {
    encoder: new Float32Array(320 * D),
    decoder: new Float32Array(320 * D),
    diffusion: new Float32Array(256 * D),
  };
  assert.throws(
    () => gridPosTables({ ...ok, decoder: new Float32Array(10) }, { dim: D, h: 8, w: 8 }),
    (e: unknown) => e instanceof AppError && e.code === 'WEIGHTS_INVALID',
  );
  assert.throws(
    () => gridPosTables({ ...ok, diffusion: new Float32Array(10) }, { dim: D, h: 8, w: 8 }),
    AppError,
  );
  assert.throws(
    () => gridPosTables(ok, { dim: D, h: 0, w: 8 }),
    (e: unknown) => e instanceof AppError && e.code === 'BAD_USER_INPUT',
  );
});
