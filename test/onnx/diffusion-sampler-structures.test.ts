/**
 * The 'scan' and 'unrolled' layouts of diffusion_sampler.onnx against the float64 reference and
 * against the 'loop' layout. All three emit the same fp32 ops per step in the same order (the
 * scan one computes the modulations of all steps in one batched GEMM), so they are expected to
 * agree with the Loop bit for bit; the reference check uses the Loop test's relative tolerance
 * (see diffusion-sampler.test.ts for why it is relative to max|x_0|).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HARMON_0_5B, HARMON_SMALL, HARMON_TINY } from '../../src/model/config.ts';
import {
  buildDiffusionSampler,
  type SamplerStructure,
  samplerStructureFor,
} from '../../src/onnx/builders/diffusion-sampler.ts';
import { toModelBytes } from '../../src/onnx/graph/serialize.ts';
import { maxAbsDiff, runModel } from '../helpers/ort.ts';
import { randomDiffusionWeights, roundWeightsToFp16 } from '../reference/diffusion.ts';
import { diffusionSamplerFixture, peak, type SamplerTestInputs } from './diffusion-sampler-fixtures.ts';

const cfg = HARMON_TINY;
const S = cfg.diffusion.samplingSteps;
const weights = randomDiffusionWeights(cfg, 2);
const n = 3;
const SCALE = 2.5;
const TEMP = 0.9;
const REL_TOL = 1e-5;
const fx = diffusionSamplerFixture({ cfg, weights, n, scale: SCALE, temperature: TEMP, amplitude: 1.5 });

// Guided or not is in the inputs (inp.rows = 2n or n), not in the graph.
function sample(structure: SamplerStructure, _useCfg: boolean, inp: SamplerTestInputs, fp16 = false) {
  const g = buildDiffusionSampler(cfg, weights, { structure, weightDType: fp16 ? 'float16' : 'float32' });
  return fx.run(toModelBytes(g), inp);
}

const reference = (useCfg: boolean, inp: SamplerTestInputs, fp16 = false) =>
  fx.reference(useCfg, inp, { weights: fp16 ? roundWeightsToFp16(weights) : weights });

const cfgIn = fx.inputs(true, 41);
const plainIn = fx.inputs(false, 51);

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
  const g = buildDiffusionSampler(cfg, weights, { structure: 'scan' });
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
  const empty = await runModel(toModelBytes(g), fx.emptyFeeds());
  assert.deepEqual([...empty.x_0.dims], [0, 16]);
});

test('unrolled sampler: no Loop/Scan, weights shared, equals the Loop bit for bit', async () => {
  const g = buildDiffusionSampler(cfg, weights, { structure: 'unrolled' });
  assert.ok(!g.nodes.some((nd) => nd.opType === 'Loop' || nd.opType === 'Scan'));
  // S copies of the step read the same initializers instead of S copies of the weights.
  const loopInits = buildDiffusionSampler(cfg, weights).initializers;
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
