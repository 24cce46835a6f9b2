/**
 * The 'scan' and 'unrolled' layouts of diffusion_sampler.onnx against the float64 reference and
 * against the 'loop' layout. All three emit the same fp32 ops per step in the same order (the
 * scan one computes the modulations of all steps in one batched GEMM), so they are expected to
 * agree with the Loop bit for bit; the reference check uses the Loop test's relative tolerance
 * (see diffusion-sampler.test.ts for why it is relative to max|x_0|).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  buildDiffusionSampler,
  type SamplerStructure,
  samplerStructureFor,
} from '../../src/onnx/builders/diffusion-sampler.ts';
import { HARMON_0_5B, HARMON_SMALL, HARMON_TINY } from '../../src/onnx/config.ts';
import { toModelBytes } from '../../src/onnx/graph/serialize.ts';
import { f32, maxAbsDiff, randomArray, runModel } from '../helpers/ort.ts';
import {
  diffusionSampleReference,
  randomDiffusionWeights,
  roundWeightsToFp16,
} from '../reference/diffusion.ts';

const cfg = HARMON_TINY;
const D = cfg.mar.width;
const S = cfg.diffusion.samplingSteps;
const weights = randomDiffusionWeights(cfg, 2);
const n = 3;
const SCALE = 2.5;
const TEMP = 0.9;
const REL_TOL = 1e-5;

function inputs(useCfg: boolean, seed: number) {
  const rows = useCfg ? 2 * n : n;
  const c = randomArray(rows * D, seed, 1);
  const xT = randomArray(n * 16, seed + 1, 1.5);
  const noiseAll = randomArray(S * rows * 16, seed + 2, 1.5); // the reference draws ξ for every row
  const noise = new Float32Array(S * n * 16);
  for (let i = 0; i < S; i++) noise.set(noiseAll.subarray(i * rows * 16, i * rows * 16 + n * 16), i * n * 16);
  return { rows, c, xT, noiseAll, noise };
}

async function sample(
  structure: SamplerStructure,
  useCfg: boolean,
  inp: ReturnType<typeof inputs>,
  fp16 = false,
) {
  const g = buildDiffusionSampler(cfg, weights, {
    cfg: useCfg,
    structure,
    weightDType: fp16 ? 'float16' : 'float32',
  });
  const out = await runModel(toModelBytes(g), {
    c: f32([inp.rows, D], inp.c),
    x_T: f32([n, 16], inp.xT),
    noise: f32([S, n, 16], inp.noise),
    cfg_scale: f32([1], [SCALE]),
    temperature: f32([1], [TEMP]),
  });
  assert.deepEqual([...out.x_0.dims], [n, 16]);
  return out.x_0.data as Float32Array;
}

function reference(useCfg: boolean, inp: ReturnType<typeof inputs>, fp16 = false) {
  return diffusionSampleReference(cfg, fp16 ? roundWeightsToFp16(weights) : weights, {
    n,
    c: inp.c,
    xT: inp.xT,
    noise: inp.noiseAll,
    cfg: useCfg,
    cfgScale: SCALE,
    temperature: TEMP,
  }).subarray(0, n * 16);
}

const peak = (a: ArrayLike<number>) => Math.max(...Array.from(a, Math.abs));
const cfgIn = inputs(true, 41);
const plainIn = inputs(false, 51);

for (const [useCfg, inp] of [
  [true, cfgIn],
  [false, plainIn],
] as const) {
  test(`scan sampler (cfg=${useCfg}) matches the reference and equals the Loop bit for bit`, async () => {
    const ref = reference(useCfg, inp);
    const scan = await sample('scan', useCfg, inp);
    const err = maxAbsDiff(scan, ref);
    assert.ok(err <= REL_TOL * peak(ref), `max-abs ${err} on max|x_0| ${peak(ref)}`);
    assert.deepEqual(Array.from(scan), Array.from(await sample('loop', useCfg, inp)));
  });
}

test('scan sampler with fp16 weights matches the fp16-rounded reference', async () => {
  const ref = reference(true, cfgIn, true);
  const err = maxAbsDiff(await sample('scan', true, cfgIn, true), ref);
  assert.ok(err <= REL_TOL * peak(ref), `max-abs ${err} on ${peak(ref)}`);
});

test('scan sampler: one Scan walking the steps in reverse, modulations outside it, n = 0 runs', async () => {
  const g = buildDiffusionSampler(cfg, weights, { cfg: true, structure: 'scan' });
  const scans = g.nodes.filter((nd) => nd.opType === 'Scan');
  assert.equal(scans.length, 1);
  assert.ok(!g.nodes.some((nd) => nd.opType === 'Loop'));
  const dirs = scans[0].attrs.scan_input_directions as number[];
  assert.ok(
    dirs.length > 0 && dirs.every((d) => d === 1),
    'every scan input must be read from step S−1 down',
  );
  const body = scans[0].attrs.body as typeof g;
  assert.ok(!body.nodes.some((nd) => nd.name.includes('adaLN') || nd.name.includes('modulation')));
  assert.ok(g.nodes.some((nd) => nd.name.startsWith('/diffusion/modulation/res_blocks.1/')));
  const empty = await runModel(toModelBytes(g), {
    c: f32([0, D], []),
    x_T: f32([0, 16], []),
    noise: f32([S, 0, 16], []),
    cfg_scale: f32([1], [SCALE]),
    temperature: f32([1], [TEMP]),
  });
  assert.deepEqual([...empty.x_0.dims], [0, 16]);
});

test('unrolled sampler: no Loop/Scan, weights shared, equals the Loop bit for bit', async () => {
  const g = buildDiffusionSampler(cfg, weights, { cfg: true, structure: 'unrolled' });
  assert.ok(!g.nodes.some((nd) => nd.opType === 'Loop' || nd.opType === 'Scan'));
  // S copies of the step read the same initializers instead of S copies of the weights.
  const loopInits = buildDiffusionSampler(cfg, weights, { cfg: true }).initializers;
  const matrixElements = (inits: typeof loopInits) =>
    inits.filter((i) => i.dims.length === 2).reduce((a, i) => a + i.dims[0] * i.dims[1], 0);
  assert.equal(matrixElements(g.initializers), matrixElements(loopInits));
  assert.equal(g.nodes.filter((nd) => nd.name.endsWith('/res_blocks.0/mlp.0/MatMul')).length, S);
  assert.deepEqual(
    Array.from(await sample('unrolled', true, cfgIn)),
    Array.from(await sample('loop', true, cfgIn)),
  );
});

test('export default: scan where the hoisted tables stay small (tiny), Loop for wider models', () => {
  assert.equal(samplerStructureFor(HARMON_TINY), 'scan');
  assert.equal(samplerStructureFor(HARMON_SMALL), 'loop');
  assert.equal(samplerStructureFor(HARMON_0_5B), 'loop');
});
