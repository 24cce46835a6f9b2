/**
 * Fused whole-sampler graph (diffusion_sampler.onnx: one session run over all 100 steps, as a Loop
 * or a Scan — see samplerStructureFor)
 * against the per-step driver (100 diffusion_mlp runs + host update) on identical inputs: the
 * speed ratio of the two, and whether their outputs agree.
 *
 * Both graphs are built in memory from the same seeded random weights at the model's shapes (its
 * manifest config and structure choice): a model directory ships only the fused sampler, and
 * speed does not depend on the weights' values.
 *
 * Inputs are one MAR step's worth of tokens with CFG, drawn from the project PRNG so every run
 * of the bench feeds the same numbers. Both sides are measured interleaved (fused, per-step,
 * fused, …) so a burst of machine noise hits both rather than one.
 *
 * Equality: with random weights x_0 grows to ~5·10⁴ (see test/onnx/diffusion-sampler.test.ts),
 * where fp32 itself cannot hold 1e-3 absolute; the two agree to a few ulps of max|x_0|, so the
 * check is max-abs difference ≤ 1e-5 · max|x_0|, and both numbers are reported.
 */
import { outF32 } from '../harmon/harmon-model.ts';
import { samplerRows } from '../harmon/mar-batch.ts';
import { Rng } from '../harmon/prng.ts';
import { readManifest } from '../model/model-dir.ts';
import { buildDiffusionMlp } from '../onnx/builders/diffusion-mlp.ts';
import { buildDiffusionSampler, samplerStructureFor } from '../onnx/builders/diffusion-sampler.ts';
import { toModelBytes } from '../onnx/graph/serialize.ts';
import { randomHarmonWeights } from '../onnx/weights/random.ts';
import { openGraphSession } from '../runtime/sessions.ts';
import { AppError } from '../shared/errors.ts';
import { type Measurement, type MeasureOptions, measurementOf } from './harness.ts';
import { type SamplerInputs, samplePerStep } from './per-step-sampler.ts';

export const EQUALITY_REL_TOL = 1e-5;

export interface SamplerBenchOptions {
  modelDir: string;
  /** Tokens sampled per MAR step (conditional rows); the CFG batch has twice as many. */
  tokens?: number;
  cfgScale?: number;
  temperature?: number;
  seed?: number;
  measure?: MeasureOptions;
  /** Label prefix of the measurements (e.g. the model variant). */
  label?: string;
  /**
   * ORT intra-op threads for BOTH sessions (default: the runtime's, as production runs). On a
   * loaded 2-core machine 1 thread cuts the spread several-fold; the ratio is fair either way.
   */
  intraOpNumThreads?: number;
}

export interface SamplerBenchResult {
  tokens: number;
  cfg: boolean;
  fused: Measurement;
  perStep: Measurement;
  /** perStep.median / fused.median: > 1 means the fused graph is faster. */
  speedup: number;
  sessionRuns: { fused: number; perStep: number };
  maxAbsDiff: number;
  maxAbsOutput: number;
  /** maxAbsDiff / maxAbsOutput. */
  relativeDiff: number;
  outputsEqual: boolean;
}

export function samplerInputs(
  D: number,
  S: number,
  tokens: number,
  seed: number,
  cfgScale: number,
  temperature: number,
): SamplerInputs {
  const rng = Rng.fromSeed(seed).fork('bench-sampler');
  return {
    n: tokens,
    c: rng.fork('c').normal(2 * tokens * D), // [2n, D]: conditional block ‖ unconditional block
    xT: rng.fork('x_T').normal(tokens * 16),
    noise: rng.fork('noise').normal(S * tokens * 16),
    cfg: true,
    cfgScale,
    temperature,
  };
}

export function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

export function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new AppError('INTERNAL', `length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export async function runSamplerBench(opts: SamplerBenchOptions): Promise<SamplerBenchResult> {
  const config = (await readManifest(opts.modelDir)).config;
  const weights = randomHarmonWeights(config, opts.seed ?? 1, { includeVae: false });
  const threads = { intraOpNumThreads: opts.intraOpNumThreads };
  const sampler = await openGraphSession(
    'diffusion_sampler',
    toModelBytes(buildDiffusionSampler(config, weights, { structure: samplerStructureFor(config) })),
    threads,
  );
  const mlp = await openGraphSession(
    'diffusion_mlp',
    toModelBytes(buildDiffusionMlp(config, weights)),
    threads,
  );
  try {
    const S = config.diffusion.samplingSteps;
    const D = config.mar.width;
    const tokens = opts.tokens ?? 16;
    const inp = samplerInputs(D, S, tokens, opts.seed ?? 1, opts.cfgScale ?? 3, opts.temperature ?? 1);
    const rows = samplerRows(tokens, true);
    const fused = async () => {
      const out = await sampler.run({
        c: { dtype: 'float32', dims: [2 * tokens, D], data: inp.c },
        x_T: { dtype: 'float32', dims: [tokens, 16], data: inp.xT },
        noise: { dtype: 'float32', dims: [S, tokens, 16], data: inp.noise },
        row_state: { dtype: 'int64', dims: [2 * tokens], data: rows.rowState },
        uncond_row: { dtype: 'int64', dims: [tokens], data: rows.uncondRow },
        cfg_scale: { dtype: 'float32', dims: [tokens], data: new Float32Array(tokens).fill(inp.cfgScale) },
        temperature: {
          dtype: 'float32',
          dims: [tokens],
          data: new Float32Array(tokens).fill(inp.temperature),
        },
      });
      return outF32(out, 'x_0', 'diffusion_sampler').data;
    };
    const perStep = () => samplePerStep(config, mlp, inp);

    const m = opts.measure ?? {};
    const warmup = m.warmup ?? 1;
    const reps = Math.max(1, m.reps ?? 5);
    const maxMs = m.maxMs ?? Number.POSITIVE_INFINITY;
    const start = performance.now();
    let a = await fused();
    let b = await perStep();
    for (let i = 1; i < warmup; i++) {
      a = await fused();
      b = await perStep();
    }
    const tf: number[] = [];
    const tp: number[] = [];
    while (tf.length < reps && (tf.length === 0 || performance.now() - start < maxMs)) {
      let t0 = performance.now();
      a = await fused();
      tf.push(performance.now() - t0);
      t0 = performance.now();
      b = await perStep();
      tp.push(performance.now() - t0);
    }
    const label = opts.label ? `${opts.label} ` : '';
    const fusedM = {
      ...measurementOf(`${label}sampler fused (1 run)`, tf, 'ms', warmup),
      truncated: tf.length < reps,
    };
    const perStepM = {
      ...measurementOf(`${label}sampler per-step (${S} runs)`, tp, 'ms', warmup),
      truncated: tp.length < reps,
    };
    const diff = maxAbsDifference(a, b);
    const peak = maxAbs(a);
    return {
      tokens,
      cfg: true,
      fused: fusedM,
      perStep: perStepM,
      speedup: perStepM.median / fusedM.median,
      sessionRuns: { fused: 1, perStep: S },
      maxAbsDiff: diff,
      maxAbsOutput: peak,
      relativeDiff: peak > 0 ? diff / peak : diff,
      outputsEqual: diff <= EQUALITY_REL_TOL * Math.max(peak, 1),
    };
  } finally {
    await Promise.all([sampler.release(), mlp.release()]);
  }
}
