/**
 * One reverse step of the fused diffusion sampler (spec §3.5–§3.6, §3.8), emitted into whichever
 * graph is given: the Loop body (coefficients Gathered by the loop index) or the root graph of
 * the unrolled sampler (coefficients baked in as scalar constants). Both structures emit this
 * same op sequence, so they compute the same fp32 numbers as each other and as the per-step driver.
 *
 *   xx = x[state] [R,16]                             y [R,W] = cond + temb[i]
 *   out = MLP trunk(xx, y) [R,32] ──► ε_c = ε[0…n−1], v_c = v[0…n−1], ε_u = ε[uncond]
 *   ε  = ε_u + s·(ε_c − ε_u)                         v = v_c
 *   μ  = c1·(sra·x − srm1·ε) + c2·x
 *   logσ² = f·maxlog + (1−f)·minlog,  f = (v+1)/2
 *   x' = μ + exp(½·logσ²)·ξ·gate                      (gate: nz[i]·temperature; none when absent)
 *
 * With CFG the rows are [c_cond ‖ c_uncond], state = [0…n−1, 0…n−1], uncond[i] = n + i: the
 * §3.8 formulation. Without it R = n and uncond[i] = i. Per-row s and temperature let rows of
 * different requests (with and without guidance) share one run.
 */
import type { GraphBuilder } from '../graph/graph-builder.ts';
import { OUT_CHANNELS, TOKEN_CHANNELS } from './diffusion-mlp.ts';

/** Per-step coefficients as value names (scalar f32) in the graph being built. */
export interface StepCoefficients {
  sra: string;
  srm1: string;
  c1: string;
  c2: string;
  minLog: string;
  maxLog: string;
}

/**
 * How condition rows pair with state rows (graph inputs, the same every step): the network runs
 * on every condition row r at state row `state[r]`; the conditional ε of state i is row i's, the
 * unconditional one is row `uncond[i]`'s (i itself: no guidance, ε = ε_c exactly).
 */
export interface SamplerRows {
  state: string; // [R] int64
  uncond: string; // [n] int64
  count: string; // [1] int64 = n
  cfgScale: string; // [n,1]
}

export interface StepInputs {
  x: string; // [n,16] current state
  /** The network after y: [R,16] -> [R,32] (diffusionMlpTrunk with this step's y). */
  trunk: (xx: string) => string;
  rows: SamplerRows;
  coef: StepCoefficients;
  /** ξ [n,16] and the gate [n,1] multiplying it; undefined when the step adds no noise. */
  noise?: { xi: string; gate: string };
}

/** Emits one reverse step; returns x_{t−1} [n,16]. */
export function emitSamplerStep(b: GraphBuilder, s: StepInputs): string {
  const C = TOKEN_CHANNELS;
  const { x, coef, rows } = s;
  const xx = b.op1('Gather', [x, rows.state], { attrs: { axis: 0 } }); // [n,16] -> [R,16]
  const out = s.trunk(xx); // [R,32]
  const [epsAll, vAll] = b.op('Split', [out, b.ints([C, OUT_CHANNELS - C])], {
    outputs: 2,
    attrs: { axis: 1 },
  });
  const first = (t: string) => b.op1('Slice', [t, b.ints([0]), rows.count, b.ints([0])]); // rows 0…n−1
  const epsC = first(epsAll);
  const epsU = b.op1('Gather', [epsAll, rows.uncond], { attrs: { axis: 0 } }); // [n,16]
  const eps = b.op1('Add', [epsU, b.op1('Mul', [rows.cfgScale, b.op1('Sub', [epsC, epsU])])]);
  const v = first(vAll); // the variance is never guided
  return b.scope('update', () => {
    const x0 = b.op1('Sub', [b.op1('Mul', [coef.sra, x]), b.op1('Mul', [coef.srm1, eps])]);
    const mean = b.op1('Add', [b.op1('Mul', [coef.c1, x0]), b.op1('Mul', [coef.c2, x])]);
    if (!s.noise) return mean;
    const frac = b.op1('Mul', [b.op1('Add', [v, b.scalar(1)]), b.scalar(0.5)]);
    const oneMinus = b.op1('Sub', [b.scalar(1), frac]);
    const logVar = b.op1('Add', [b.op1('Mul', [frac, coef.maxLog]), b.op1('Mul', [oneMinus, coef.minLog])]);
    const std = b.op1('Exp', [b.op1('Mul', [logVar, b.scalar(0.5)])]);
    return b.op1('Add', [mean, b.op1('Mul', [b.op1('Mul', [std, s.noise.xi]), s.noise.gate])]);
  });
}
