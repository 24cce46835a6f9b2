/**
 * diffusion_sampler.onnx (spec §6.9): the whole respaced reverse process of one MAR step in one
 * run, as an ONNX Loop over the spaced steps, in §3.8's cheaper formulation — only the
 * conditional state is kept; with CFG the network sees [x ‖ x] against [c_cond ‖ c_uncond].
 *
 *   c [2n,D] ──cond_embed──► cond [2n,W]                            (once, before the loop)
 *   τ table [S] ──timestep embedding──► temb table [S,W]            (constants only: folded at load)
 *   Loop j = 0 … S−1, i = S−1−j, carried x [n,16] (fp32), starting at x_T:
 *     xx = [x ‖ x] [2n,16]                      y = cond + temb[i]  [2n,W]
 *     out = MLP trunk(xx, y) [2n,32] ──rows──► out_c, out_u [n,32] ──cols──► ε_c|v_c, ε_u|·
 *     ε  = ε_u + s·(ε_c − ε_u)                  v = v_c             (variance is never guided)
 *     μ  = c1[i]·(sra[i]·x − srm1[i]·ε) + c2[i]·x
 *     logσ² = f·maxlog[i] + (1−f)·minlog[i],  f = (v+1)/2
 *     x ← μ + nz[i]·exp(½·logσ²)·noise[i]·temperature        (nz[0] = 0: no noise at i = 0)
 *   x_0 = x
 *
 * Without CFG (`cfg: false`) c is [n,D], xx = x and ε, v come straight from the n rows.
 */
import type { HarmonConfig } from '../config.ts';
import type { BuildContext } from '../graph/context.ts';
import { GraphBuilder } from '../graph/graph-builder.ts';
import type { WeightSource } from '../weights/types.ts';
import {
  condEmbedding,
  type DiffusionBuildOptions,
  diffusionMlpParams,
  diffusionMlpTrunk,
  OUT_CHANNELS,
  TOKEN_CHANNELS,
  timestepEmbedding,
} from './diffusion-mlp.ts';
import { diffusionSchedule } from './diffusion-schedule.ts';

export interface DiffusionSamplerOptions extends DiffusionBuildOptions {
  /** true: c is [2n,D] (conditional rows first) and ε is guided; false: plain n-row sampler. */
  cfg: boolean;
}

export function buildDiffusionSampler(
  config: HarmonConfig,
  weights: WeightSource,
  opts: DiffusionSamplerOptions,
): GraphBuilder {
  const S = config.diffusion.samplingSteps;
  const C = TOKEN_CHANNELS;
  const g = new GraphBuilder('diffusion_sampler');
  const ctx: BuildContext = {
    g,
    weights,
    weightDType: opts.weightDType ?? 'float32',
    keyPrefix: opts.keyPrefix,
  };

  const c = g.input('c', 'float32', [opts.cfg ? '2n' : 'n', config.mar.width]);
  const xT = g.input('x_T', 'float32', ['n', C]);
  const noise = g.input('noise', 'float32', [S, 'n', C]);
  const cfgScale = g.input('cfg_scale', 'float32', [1]);
  const temperature = g.input('temperature', 'float32', [1]);

  const p = diffusionMlpParams(ctx, config);
  const sched = diffusionSchedule(config.diffusion);
  // float64 tables, cast to float32 once here (§3.3).
  const table = (name: string, values: number[]) =>
    g.initializer(`diffusion_sampler.${name}`, 'float32', [S], Float32Array.from(values));
  const tau = table('timesteps', sched.timesteps);
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

  const { cond, tembTable } = g.scope('diffusion', () => ({
    cond: condEmbedding(g, p, c), // [rows, W], hoisted out of the loop
    tembTable: timestepEmbedding(g, p, tau), // [S, W]
  }));

  const body = g.subgraph('diffusion_sampler_step');
  const iter = body.input('step_j', 'int64', []);
  const condIn = body.input('step_cond_in', 'bool', []);
  const x = body.input('step_x', 'float32', ['n', C]);
  const xNext = body.scope('diffusion', () => {
    const b = body;
    const i = b.op1('Sub', [b.constant('int64', [], [S - 1]), iter]); // spaced index, S−1 … 0
    const at = (t: string) => b.op1('Gather', [t, i], { attrs: { axis: 0 } }); // [S] -> scalar
    const y = b.op1('Add', [cond, b.op1('Gather', [tembTable, i], { attrs: { axis: 0 } })]); // [rows,W] + [W]
    let eps: string;
    let v: string;
    if (opts.cfg) {
      const xx = b.op1('Concat', [x, x], { attrs: { axis: 0 } }); // [n,16] -> [2n,16]
      const out = diffusionMlpTrunk(b, p, xx, y); // [2n,32]
      // Explicit sizes [n, n]: Split's num_outputs rejects a zero-length axis, and n = 0 must run.
      const nRows = b.op1('Shape', [x], { attrs: { start: 0, end: 1 } }); // [1] = n
      const halves = b.op1('Concat', [nRows, nRows], { attrs: { axis: 0 } });
      const [outC, outU] = b.op('Split', [out, halves], { outputs: 2, attrs: { axis: 0 } }); // [2n,32] -> [n,32] ×2
      const [epsC, vC] = b.op('Split', [outC, b.ints([C, OUT_CHANNELS - C])], {
        outputs: 2,
        attrs: { axis: 1 },
      });
      const [epsU] = b.op('Split', [outU, b.ints([C, OUT_CHANNELS - C])], { outputs: 2, attrs: { axis: 1 } });
      eps = b.op1('Add', [epsU, b.op1('Mul', [cfgScale, b.op1('Sub', [epsC, epsU])])]);
      v = vC;
    } else {
      const out = diffusionMlpTrunk(b, p, x, y); // [n,32]
      [eps, v] = b.op('Split', [out, b.ints([C, OUT_CHANNELS - C])], { outputs: 2, attrs: { axis: 1 } });
    }
    return b.scope('update', () => {
      const x0 = b.op1('Sub', [b.op1('Mul', [at(sra), x]), b.op1('Mul', [at(srm1), eps])]);
      const mean = b.op1('Add', [b.op1('Mul', [at(c1), x0]), b.op1('Mul', [at(c2), x])]);
      const frac = b.op1('Mul', [b.op1('Add', [v, b.scalar(1)]), b.scalar(0.5)]);
      const oneMinus = b.op1('Sub', [b.scalar(1), frac]);
      const logVar = b.op1('Add', [b.op1('Mul', [frac, at(maxLog)]), b.op1('Mul', [oneMinus, at(minLog)])]);
      const std = b.op1('Exp', [b.op1('Mul', [logVar, b.scalar(0.5)])]);
      const xi = b.op1('Gather', [noise, i], { attrs: { axis: 0 } }); // [S,n,16] -> [n,16]
      const gate = b.op1('Mul', [at(nz), temperature]); // [1]: temperature scales the std only
      return b.op1('Add', [mean, b.op1('Mul', [b.op1('Mul', [std, xi]), gate])]);
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
