/**
 * diffusion_sampler.onnx (spec §6.9): the whole respaced reverse process of one MAR step in one
 * run, as an ONNX Loop over the spaced steps, in §3.8's cheaper formulation — only the
 * conditional state is kept; with CFG the network sees [x ‖ x] against [c_cond ‖ c_uncond].
 * One graph serves guided and unguided rows (one copy of the MLP weights): the row inputs say
 * which condition rows pair with which state row (diffusion-sampler-step.ts).
 *
 *   c [R,D] ──cond_embed──► cond [R,W]                              (once, before the loop)
 *   τ table [S] ──timestep embedding──► temb table [S,W]            (constants only: folded at load)
 *   Loop j = 0 … S−1, i = S−1−j, carried x [n,16] (fp32), starting at x_T:
 *     xx = x[row_state] [R,16]                  y = cond + temb[i]  [R,W]
 *     out = MLP trunk(xx, y) [R,32] ──► ε_c, v_c (rows 0…n−1), ε_u (rows uncond_row)
 *     ε  = ε_u + s·(ε_c − ε_u)                  v = v_c             (variance is never guided)
 *     μ  = c1[i]·(sra[i]·x − srm1[i]·ε) + c2[i]·x
 *     logσ² = f·maxlog[i] + (1−f)·minlog[i],  f = (v+1)/2
 *     x ← μ + nz[i]·exp(½·logσ²)·noise[i]·temperature        (nz[0] = 0: no noise at i = 0)
 *   x_0 = x
 *
 * Inputs: c [R,D]; x_T [n,16]; noise [S,n,16]; row_state [R] int64; uncond_row [n] int64;
 * cfg_scale [n]; temperature [n] (per state row, so requests with different settings batch).
 */
import type { HarmonConfig } from '../../model/config.ts';
import type { BuildContext } from '../graph/context.ts';
import { GraphBuilder } from '../graph/graph-builder.ts';
import type { WeightSource } from '../weights/types.ts';
import {
  condEmbedding,
  type DiffusionBuildOptions,
  diffusionMlpParams,
  diffusionMlpTrunk,
  TOKEN_CHANNELS,
  timestepEmbedding,
} from './diffusion-mlp.ts';
import { emitScanSampler } from './diffusion-sampler-scan.ts';
import { emitSamplerStep, type SamplerRows } from './diffusion-sampler-step.ts';
import { diffusionSchedule } from './diffusion-schedule.ts';

/**
 * How the S steps are laid out in the one graph (all three are one session run per MAR step):
 * 'loop': an ONNX Loop whose body holds the whole network step;
 * 'scan': adaLN modulations of all steps computed before an ONNX Scan (diffusion-sampler-scan.ts);
 * 'unrolled': S copies of the step in one flat graph sharing the weight initializers.
 */
export type SamplerStructure = 'loop' | 'scan' | 'unrolled';

/**
 * Hoisted modulation tables hold S·(3·depth+2)·W floats per CFG row. Measured on the CPU
 * provider (docs/performance.md): 'scan' beats 'loop' by ~12 % on tiny (51,200 floats per row,
 * 6.5 MB for 32 rows: cache-resident) and loses by ~12 % on small (281,600 per row, 36 MB),
 * where writing and re-reading the tables costs more than the batched GEMM saves. Real widths
 * would need gigabytes, so they keep the Loop. 'unrolled' never won (and takes ~5 s to load).
 */
const SCAN_MAX_FLOATS_PER_ROW = 65_536;

export function samplerStructureFor(config: HarmonConfig): SamplerStructure {
  const d = config.diffusion;
  return d.samplingSteps * (3 * d.depth + 2) * d.width <= SCAN_MAX_FLOATS_PER_ROW ? 'scan' : 'loop';
}

export interface DiffusionSamplerOptions extends DiffusionBuildOptions {
  /** Default 'loop'. */
  structure?: SamplerStructure;
}

export function buildDiffusionSampler(
  config: HarmonConfig,
  weights: WeightSource,
  opts: DiffusionSamplerOptions = {},
): GraphBuilder {
  const S = config.diffusion.samplingSteps;
  const C = TOKEN_CHANNELS;
  const structure = opts.structure ?? 'loop';
  const g = new GraphBuilder('diffusion_sampler');
  const ctx: BuildContext = {
    g,
    weights,
    weightDType: opts.weightDType ?? 'float32',
    keyPrefix: opts.keyPrefix,
  };

  const c = g.input('c', 'float32', ['R', config.mar.width]);
  const xT = g.input('x_T', 'float32', ['n', C]);
  const noise = g.input('noise', 'float32', [S, 'n', C]);
  const rowState = g.input('row_state', 'int64', ['R']);
  const uncondRow = g.input('uncond_row', 'int64', ['n']);
  const column = (t: string) => g.op1('Unsqueeze', [t, g.ints([1])]); // [n] -> [n,1], once per run
  const cfgScale = column(g.input('cfg_scale', 'float32', ['n']));
  const temperature = column(g.input('temperature', 'float32', ['n']));
  const rows: SamplerRows = {
    state: rowState,
    uncond: uncondRow,
    count: g.op1('Shape', [xT], { attrs: { start: 0, end: 1 } }),
    cfgScale,
  };

  const p = diffusionMlpParams(ctx, config);
  const sched = diffusionSchedule(config.diffusion);
  // τ stays a float32 initializer: the timestep embedding of all S steps folds at load.
  const tau = g.initializer(
    'diffusion_sampler.timesteps',
    'float32',
    [S],
    Float32Array.from(sched.timesteps),
  );
  const { cond, tembTable } = g.scope('diffusion', () => ({
    cond: condEmbedding(g, p, c), // [rows, W], hoisted out of the loop
    tembTable: timestepEmbedding(g, p, tau), // [S, W]
  }));

  if (structure === 'scan') {
    const x0 = emitScanSampler(g, config, p, sched, { cond, tembTable, xT, noise, rows, temperature });
    g.output(x0, 'x_0', 'float32', ['n', C]);
    return g;
  }
  if (structure === 'unrolled') {
    // Steps i = S−1 … 0 as S copies of the step in the root graph; every copy reads the same
    // weight initializers. Coefficients are scalar constants and temb[i] / ξ[i] Gathers with a
    // constant index (the temb ones fold at load), so nothing per-iteration is left to run.
    let x = xT;
    for (let i = S - 1; i >= 0; i--) {
      const k = (arr: number[]) => g.scalar(Math.fround(arr[i]));
      x = g.scope(`diffusion/step.${i}`, () => {
        const idx = g.constant('int64', [], [i]);
        const y = g.op1('Add', [cond, g.op1('Gather', [tembTable, idx], { attrs: { axis: 0 } })]); // [rows,W] + [W]
        return emitSamplerStep(g, {
          x,
          trunk: (xx) => diffusionMlpTrunk(g, p, xx, y),
          rows,
          coef: {
            sra: k(sched.sra),
            srm1: k(sched.srm1),
            c1: k(sched.c1),
            c2: k(sched.c2),
            minLog: k(sched.minLog),
            maxLog: k(sched.maxLog),
          },
          // nz[i]·temperature = temperature exactly for i > 0; i = 0 adds no noise (§3.6).
          noise:
            i > 0
              ? { xi: g.op1('Gather', [noise, idx], { attrs: { axis: 0 } }), gate: temperature } // [S,n,16] -> [n,16]
              : undefined,
        });
      });
    }
    g.output(x, 'x_0', 'float32', ['n', C]);
    return g;
  }

  const table = (name: string, values: number[]) =>
    g.initializer(`diffusion_sampler.${name}`, 'float32', [S], Float32Array.from(values));
  const sra = table('sra', sched.sra);
  const srm1 = table('srm1', sched.srm1);
  const c1 = table('c1', sched.c1);
  const c2 = table('c2', sched.c2);
  const minLog = table('minlog', sched.minLog);
  const maxLog = table('maxlog', sched.maxLog);
  const nz = table(
    'nonzero',
    sched.timesteps.map((_, i) => (i > 0 ? 1 : 0)),
  );
  const body = g.subgraph('diffusion_sampler_step');
  const iter = body.input('step_j', 'int64', []);
  const condIn = body.input('step_cond_in', 'bool', []);
  const x = body.input('step_x', 'float32', ['n', C]);
  const xNext = body.scope('diffusion', () => {
    const b = body;
    const i = b.op1('Sub', [b.constant('int64', [], [S - 1]), iter]); // spaced index, S−1 … 0
    const at = (t: string) => b.op1('Gather', [t, i], { attrs: { axis: 0 } }); // [S] -> scalar
    const y = b.op1('Add', [cond, b.op1('Gather', [tembTable, i], { attrs: { axis: 0 } })]); // [rows,W] + [W]
    return emitSamplerStep(b, {
      x,
      trunk: (xx) => diffusionMlpTrunk(b, p, xx, y),
      rows,
      coef: { sra: at(sra), srm1: at(srm1), c1: at(c1), c2: at(c2), minLog: at(minLog), maxLog: at(maxLog) },
      // The Loop body is one graph for every i: nz[0] = 0 switches the noise off at i = 0.
      noise: {
        xi: b.op1('Gather', [noise, i], { attrs: { axis: 0 } }), // [S,n,16] -> [n,16]
        gate: b.op1('Mul', [at(nz), temperature]), // [n,1]: temperature scales the std only
      },
    });
  });
  body.output(condIn, 'step_cond_out', 'bool', []);
  body.output(xNext, 'step_x_out', 'float32', ['n', C]);

  const trip = g.constant('int64', [], [S]);
  const keepGoing = g.initializer('diffusion_sampler.loop_cond', 'bool', [], Uint8Array.of(1));
  const [xFinal] = g.op('Loop', [trip, keepGoing, xT], {
    name: '/diffusion/Loop',
    outputs: 1,
    attrs: { body },
  });
  g.output(xFinal, 'x_0', 'float32', ['n', C]);
  return g;
}
