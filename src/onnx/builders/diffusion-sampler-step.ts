/**
 * One reverse step of the fused diffusion sampler (spec §3.5–§3.6, §3.8), emitted into whichever
 * graph is given: the Loop body (coefficients Gathered by the loop index) or the root graph of
 * the unrolled sampler (coefficients baked in as scalar constants). Both structures emit this
 * same op sequence, so they compute the same fp32 numbers as each other and as the per-step driver.
 *
 *   xx = [x ‖ x] [2n,16] (CFG) | x [n,16]          y [rows,W] = cond + temb[i]
 *   out = MLP trunk(xx, y) [rows,32] ──► ε_c|v_c (‖ ε_u|·)
 *   ε  = ε_u + s·(ε_c − ε_u)                         v = v_c
 *   μ  = c1·(sra·x − srm1·ε) + c2·x
 *   logσ² = f·maxlog + (1−f)·minlog,  f = (v+1)/2
 *   x' = μ + exp(½·logσ²)·ξ·gate                      (gate: nz[i]·temperature; none when absent)
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

export interface StepInputs {
  x: string; // [n,16] current state
  /** The network after y: [rows,16] -> [rows,32] (diffusionMlpTrunk with this step's y). */
  trunk: (xx: string) => string;
  cfg: boolean;
  cfgScale: string; // [1]
  /** [n, n] int64 split sizes of the CFG rows when computed outside the step (same every step). */
  halves?: string;
  coef: StepCoefficients;
  /** ξ [n,16] and the scalar gate multiplying it; undefined when the step adds no noise. */
  noise?: { xi: string; gate: string };
}

/** Emits one reverse step; returns x_{t−1} [n,16]. */
export function emitSamplerStep(b: GraphBuilder, s: StepInputs): string {
  const C = TOKEN_CHANNELS;
  const { x, coef } = s;
  let eps: string;
  let v: string;
  if (s.cfg) {
    const xx = b.op1('Concat', [x, x], { attrs: { axis: 0 } }); // [n,16] -> [2n,16]
    const out = s.trunk(xx); // [2n,32]
    const halves = s.halves ?? cfgHalves(b, x);
    const [outC, outU] = b.op('Split', [out, halves], { outputs: 2, attrs: { axis: 0 } }); // [2n,32] -> [n,32] ×2
    const [epsC, vC] = b.op('Split', [outC, b.ints([C, OUT_CHANNELS - C])], {
      outputs: 2,
      attrs: { axis: 1 },
    });
    const [epsU] = b.op('Split', [outU, b.ints([C, OUT_CHANNELS - C])], { outputs: 2, attrs: { axis: 1 } });
    eps = b.op1('Add', [epsU, b.op1('Mul', [s.cfgScale, b.op1('Sub', [epsC, epsU])])]);
    v = vC;
  } else {
    const out = s.trunk(x); // [n,32]
    [eps, v] = b.op('Split', [out, b.ints([C, OUT_CHANNELS - C])], { outputs: 2, attrs: { axis: 1 } });
  }
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

/** [n, n]: explicit Split sizes, because Split's num_outputs rejects a zero-length axis (n = 0). */
export function cfgHalves(b: GraphBuilder, x: string): string {
  const nRows = b.op1('Shape', [x], { attrs: { start: 0, end: 1 } }); // [1] = n
  return b.op1('Concat', [nRows, nRows], { attrs: { axis: 0 } });
}
