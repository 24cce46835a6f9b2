import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HARMON_0_5B, HARMON_1_5B, HARMON_TINY } from '../../src/model/config.ts';
import { diffusionSchedule, respacedTimesteps } from '../../src/onnx/builders/diffusion-schedule.ts';

// Check values copied verbatim from harmon-inference.md §3.1–§3.3 (computed there with numpy).
const s = diffusionSchedule({ trainSteps: 1000, samplingSteps: 100 });

/**
 * |actual − printed| must be within half a unit of the printed value's last digit (the best a
 * rounded check value can say), plus 1e-12 relative for float64 noise. For the 10-digit values
 * this is ~1e-10 relative; for the 5-digit β' column it is the printed precision.
 */
function near(actual: number, printed: string, what: string) {
  const expected = Number(printed);
  const [mant, exp = '0'] = printed.toLowerCase().replace(/^[-+]/, '').split('e');
  const decimals = mant.includes('.') ? mant.split('.')[1].length : 0;
  const tol = 0.5 * 10 ** (Number(exp) - decimals) * (1 + 1e-9) + 1e-12 * Math.abs(expected);
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs ${printed} (tol ${tol})`);
}

const TIMESTEPS = `
0 10 20 30 40 50 61 71 81 91 101 111 121 131 141 151 161 172 182 192
202 212 222 232 242 252 262 272 283 293 303 313 323 333 343 353 363 373 383 394
404 414 424 434 444 454 464 474 484 494 505 515 525 535 545 555 565 575 585 595
605 616 626 636 646 656 666 676 686 696 706 716 727 737 747 757 767 777 787 797
807 817 827 838 848 858 868 878 888 898 908 918 928 938 949 959 969 979 989 999
`
  .trim()
  .split(/\s+/)
  .map(Number);

const ALPHA_BAR_SPACED = `
9.9995871578e-01 9.9927890377e-01 9.9811422867e-01 9.9646582169e-01 9.9433528389e-01 9.9172468461e-01 9.8830159452e-01 9.8469167306e-01 9.8061105676e-01 9.7606370902e-01
9.7105404658e-01 9.6558693522e-01 9.5966768503e-01 9.5330204524e-01 9.4649619865e-01 9.3925675564e-01 9.3159074771e-01 9.2267435530e-01 9.1413728284e-01 9.0519804346e-01
8.9586531964e-01 8.8614817605e-01 8.7605605073e-01 8.6559874596e-01 8.5478641867e-01 8.4362957065e-01 8.3213903828e-01 8.2032598208e-01 8.0697280823e-01 7.9452015930e-01
7.8178152492e-01 7.6876927784e-01 7.5549605657e-01 7.4197475311e-01 7.2821850039e-01 7.1424065955e-01 7.0005480698e-01 6.8567472106e-01 6.7111436888e-01 6.5490665746e-01
6.4001397095e-01 6.2498536743e-01 6.0983544388e-01 5.9457891506e-01 5.7923059931e-01 5.6380540411e-01 5.4831831162e-01 5.3278436410e-01 5.1721864933e-01 5.0163628596e-01
4.8449452062e-01 4.6892646027e-01 4.5338865645e-01 4.3789620069e-01 4.2246414046e-01 4.0710746458e-01 3.9184108866e-01 3.7667984059e-01 3.6163844616e-01 3.4673151473e-01
3.3197352509e-01 3.1592886735e-01 3.0153012329e-01 2.8732422414e-01 2.7332496775e-01 2.5954595132e-01 2.4600055808e-01 2.3270194438e-01 2.1966302687e-01 2.0689646996e-01
1.9441467353e-01 1.8222976088e-01 1.6918337382e-01 1.5766008159e-01 1.4646937207e-01 1.3562211452e-01 1.2512884466e-01 1.1499975438e-01 1.0524468182e-01 9.5873101882e-02
8.6894116970e-02 7.8316448174e-02 7.0148426796e-02 6.1646202521e-02 5.4363779709e-02 4.7514269013e-02 4.1104323212e-02 3.5140168144e-02 2.9627596661e-02 2.4571963003e-02
1.9978177596e-02 1.5850702281e-02 1.2193545984e-02 9.0102608210e-03 6.0596446215e-03 3.8809998422e-03 2.1842999893e-03 9.7119302987e-04 2.4285722794e-04 2.4287669070e-09
`
  .trim()
  .split(/\s+/);

test('respaced timestep map equals §3.2 (round(k·999/99))', () => {
  assert.equal(TIMESTEPS.length, 100);
  assert.deepEqual(s.timesteps, TIMESTEPS);
  assert.deepEqual(respacedTimesteps(1000, 100), TIMESTEPS);
});

test('base cosine process check values (§3.1): β capped at 0.999 only at 999', () => {
  near(s.baseBetas[0], '4.12842248e-05', 'β_0');
  near(s.baseBetas[1], '4.61417527e-05', 'β_1');
  near(s.baseBetas[998], '0.74999939', 'β_998');
  assert.equal(s.baseBetas[999], 0.999);
  assert.equal(s.baseBetas.filter((b) => b === 0.999).length, 1);
  near(s.baseAlphasCumprod[0], '0.999958715775178', 'ᾱ_0');
  near(s.baseAlphasCumprod[999], '2.4287669070e-09', 'ᾱ_999');
});

test('spaced betas (§3.2) come from ᾱ ratios, not the 1000-step betas', () => {
  near(s.betas[0], '4.12842248e-05', "β'_0");
  near(s.betas[1], '6.79840069e-04', "β'_1");
  near(s.betas[99], '0.99998999920', "β'_99");
  // The original β_10 is an order of magnitude smaller than β'_1: using it would be the pitfall.
  assert.ok(s.betas[1] / s.baseBetas[10] > 5);
});

test('all 100 spaced ᾱ′ values equal §3.3', () => {
  assert.equal(ALPHA_BAR_SPACED.length, 100);
  ALPHA_BAR_SPACED.forEach((v, i) => {
    near(s.alphasCumprod[i], v, `ᾱ'_${i}`);
  });
});

test('per-step table check values (§3.3 rows 0, 1, 2, 50, 98, 99 and σ̃²_1)', () => {
  // i, τ, β', ᾱ', sra, srm1, c1, c2, minlog, maxlog
  const rows: [number, number, ...string[]][] = [
    [
      0,
      0,
      '4.1284e-05',
      '0.9999587158',
      '1.0000206428',
      '0.0064254128',
      '1.0',
      '0.0',
      '-10.1539451',
      '-10.0950301',
    ],
    [
      1,
      10,
      '6.7984e-04',
      '0.9992789038',
      '1.0003607432',
      '0.0268629221',
      '0.9427674281',
      '0.0572325684',
      '-10.1539451',
      '-7.2936530',
    ],
    [
      2,
      20,
      '1.1655e-03',
      '0.9981142287',
      '1.0009442213',
      '0.0434664719',
      '0.6178348529',
      '0.3821650419',
      '-7.7159114',
      '-6.7545918',
    ],
    [
      50,
      505,
      '3.4172e-02',
      '0.4844945206',
      '1.4366651770',
      '1.0315070677',
      '0.0469491558',
      '0.9500863770',
      '-3.4101752',
      '-3.3763574',
    ],
    [
      98,
      989,
      '0.7499393',
      '2.4285723e-04',
      '64.168883552',
      '64.161091140',
      '0.0233767625',
      '0.4996964153',
      '-0.2884918',
      '-0.2877630',
    ],
    [
      99,
      999,
      '0.9999900',
      '2.4287669e-09',
      '20291.169635',
      '20291.169610',
      '0.0155837214',
      '0.0031616364',
      '-2.52885e-04',
      '-1.00009e-05',
    ],
  ];
  for (const [i, tau, beta, abar, sra, srm1, c1, c2, minlog, maxlog] of rows) {
    assert.equal(s.timesteps[i], tau);
    near(s.betas[i], beta, `β'_${i}`);
    near(s.alphasCumprod[i], abar, `ᾱ'_${i}`);
    near(s.sra[i], sra, `sra_${i}`);
    near(s.srm1[i], srm1, `srm1_${i}`);
    near(s.c1[i], c1, `c1_${i}`);
    near(s.c2[i], c2, `c2_${i}`);
    near(s.minLog[i], minlog, `minlog_${i}`);
    near(s.maxLog[i], maxlog, `maxlog_${i}`);
  }
  near(s.posteriorVariance[1], '3.8922225902e-05', 'σ̃²_1');
  assert.equal(s.posteriorVariance[0], 0);
  // Clipping: index 0 borrows index 1; unclipped it would be log 0 = −∞.
  assert.equal(s.minLog[0], s.minLog[1]);
  assert.equal(Math.log(s.posteriorVariance[0]), Number.NEGATIVE_INFINITY);
});

test('schedule is parameterised by the config and every variant uses 1000/100', () => {
  for (const c of [HARMON_TINY, HARMON_0_5B, HARMON_1_5B]) {
    assert.deepEqual(diffusionSchedule(c.diffusion).timesteps, TIMESTEPS);
  }
  const small = diffusionSchedule({ trainSteps: 1000, samplingSteps: 10 });
  assert.deepEqual(small.timesteps, [0, 111, 222, 333, 444, 555, 666, 777, 888, 999]);
  assert.equal(small.sra.length, 10);
  assert.throws(() => respacedTimesteps(1000, 1), RangeError);
});
