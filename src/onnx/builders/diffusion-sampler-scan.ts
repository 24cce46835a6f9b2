/**
 * The 'scan' structure of diffusion_sampler.onnx: everything that does not depend on the state x
 * is computed for all S steps before the iteration, and an ONNX Scan walks the steps in reverse.
 *
 * The adaLN modulations depend only on y = cond + temb[i], never on x, and they are ~3/4 of the
 * network's FLOPs. Computed once as one [S·rows, W] × [W, 3W] GEMM per block (instead of S small
 * ones inside the loop), they become scan inputs, so the body keeps only the x-dependent ops:
 *
 *   before:  yAll = temb[S,1,W] + cond[1,rows,W] ──SiLU──► ys [S·rows,W]
 *            per block j: ys·ada_j + b ──Split──► shift_j, scale_j+1, gate_j  [S,rows,W] each
 *            final:       ys·ada_f + b ──Split──► shift_f, scale_f+1          [S,rows,W] each
 *            gate[S,n,1] = nz·temperature
 *   Scan (reverse over S, state x [n,16]), slice i of every table above plus ξ[i], sra[i] …:
 *            h = input_proj(x[row_state]);  per block: h += gate_j·mlp(LN(h)·scale1_j + shift_j)
 *            out = linear(LN₀(h)·scale1_f + shift_f) ──► ε, v ──► update (diffusion-sampler-step)
 *
 * Same ops in the same order as diffusionMlpTrunk, so the numbers match the Loop's. Memory: the
 * modulation tables hold S·rows·(3·depth+2)·W floats (tiny: 205 KB per row), which is why the
 * export picks this structure only for small widths (see samplerStructureFor).
 */
import type { HarmonConfig } from '../../model/config.ts';
import { float } from '../graph/attributes.ts';
import type { GraphBuilder } from '../graph/graph-builder.ts';
import { type DiffusionMlpParams, TOKEN_CHANNELS } from './diffusion-mlp.ts';
import { emitSamplerStep, type SamplerRows } from './diffusion-sampler-step.ts';
import type { DiffusionSchedule } from './diffusion-schedule.ts';

export interface ScanSamplerValues {
  cond: string; // [R,W]
  tembTable: string; // [S,W]
  xT: string;
  noise: string; // [S,n,16]
  rows: SamplerRows;
  temperature: string; // [n,1]
}

/** Emits the hoisted tables and the Scan into the root graph `g`; returns x_0 [n,16]. */
export function emitScanSampler(
  g: GraphBuilder,
  config: HarmonConfig,
  p: DiffusionMlpParams,
  sched: DiffusionSchedule,
  v: ScanSamplerValues,
): string {
  const S = config.diffusion.samplingSteps;
  const W = p.width;
  const C = TOKEN_CHANNELS;
  const dense2d = (x: string, l: { w: string; b: string }) => g.op1('Add', [g.op1('MatMul', [x, l.w]), l.b]);

  // ---- step-independent part, once per run --------------------------------------------------
  const mods = g.scope('diffusion/modulation', () => {
    const temb3 = g.op1('Unsqueeze', [v.tembTable, g.ints([1])]); // [S,W] -> [S,1,W]
    const yAll = g.op1('Add', [temb3, v.cond]); // [S,1,W] + [rows,W] -> [S,rows,W]
    // 2-D so ORT fuses MatMul+Add into Gemm exactly as it does for the per-step [rows,W] input.
    const y2 = g.op1('Reshape', [yAll, g.ints([-1, W])]); // [S,rows,W] -> [S·rows,W]
    const ys = g.op1('Mul', [y2, g.op1('Sigmoid', [y2])]); // SiLU
    const toSteps = (t: string) => g.op1('Reshape', [t, g.ints([S, -1, W])]); // [S·rows,W] -> [S,rows,W]
    const plusOne = (t: string) => g.op1('Add', [t, g.scalar(1)]);
    const blocks = p.blocks.map((blk, j) =>
      g.scope(`res_blocks.${j}`, () => {
        const [shift, scale, gate] = g.op('Split', [dense2d(ys, blk.ada), g.ints([W, W, W])], {
          outputs: 3,
          attrs: { axis: -1 },
        });
        return [shift, plusOne(scale), gate].map(toSteps);
      }),
    );
    const final = g.scope('final_layer', () => {
      const [shift, scale] = g.op('Split', [dense2d(ys, p.finalAda), g.ints([W, W])], {
        outputs: 2,
        attrs: { axis: -1 },
      });
      return [shift, plusOne(scale)].map(toSteps);
    });
    return { blocks, final };
  });
  const table = (name: string, values: number[]) =>
    g.initializer(`diffusion_sampler.${name}`, 'float32', [S], Float32Array.from(values));
  const nz = table(
    'nonzero',
    sched.timesteps.map((_, i) => (i > 0 ? 1 : 0)),
  );
  const nz3 = g.op1('Unsqueeze', [nz, g.ints([1, 2])]); // [S] -> [S,1,1]
  const noiseGate = g.op1('Mul', [nz3, v.temperature], { name: '/diffusion/noise_gate/Mul' }); // [S,n,1]
  const scanned = [
    table('sra', sched.sra),
    table('srm1', sched.srm1),
    table('c1', sched.c1),
    table('c2', sched.c2),
    table('minlog', sched.minLog),
    table('maxlog', sched.maxLog),
    noiseGate,
    v.noise,
    ...mods.blocks.flat(),
    ...mods.final,
  ];

  // ---- the body: x-dependent ops only ---------------------------------------------------------
  const b = g.subgraph('diffusion_sampler_scan_step');
  const x = b.input('step_x', 'float32', ['n', C]);
  const at = (name: string, dims: (number | string)[]) => b.input(`step_${name}`, 'float32', dims);
  const [sra, srm1, c1, c2, minLog, maxLog] = ['sra', 'srm1', 'c1', 'c2', 'minlog', 'maxlog'].map((k) =>
    at(k, []),
  );
  const gate = at('gate', ['n', 1]);
  const xi = at('noise', ['n', C]);
  const blockMods = p.blocks.map((_, j) => ['shift', 'scale1', 'gate'].map((k) => at(`${k}_${j}`, ['R', W])));
  const [shiftF, scaleF] = ['shift_f', 'scale1_f'].map((k) => at(k, ['R', W]));

  const xNext = b.scope('diffusion', () => {
    const ln = (t: string, w: string, bias: string) =>
      b.op1('LayerNormalization', [t, w, bias], { attrs: { axis: -1, epsilon: float(p.eps) } });
    const dense = (scope: string, t: string, l: { w: string; b: string }) =>
      b.scope(scope, () => b.op1('Add', [b.op1('MatMul', [t, l.w]), l.b]));
    const modulate = (t: string, shift: string, scale1: string) =>
      b.op1('Add', [b.op1('Mul', [t, scale1]), shift]);
    const trunk = (xx: string) => {
      let h = dense('input_proj', xx, p.inputProj);
      p.blocks.forEach((blk, j) => {
        const [shift, scale1, g8] = blockMods[j];
        h = b.scope(`res_blocks.${j}`, () => {
          let u = modulate(ln(h, blk.lnW, blk.lnB), shift, scale1);
          const m0 = dense('mlp.0', u, blk.mlp0);
          u = dense('mlp.2', b.op1('Mul', [m0, b.op1('Sigmoid', [m0])]), blk.mlp2);
          return b.op1('Add', [h, b.op1('Mul', [g8, u])]);
        });
      });
      return b.scope('final_layer', () =>
        dense('linear', modulate(ln(h, p.ones, p.zeros), shiftF, scaleF), p.finalLinear),
      );
    };
    return emitSamplerStep(b, {
      x,
      trunk, // [R,16] -> [R,32]
      rows: v.rows,
      coef: { sra, srm1, c1, c2, minLog, maxLog },
      noise: { xi, gate },
    });
  });
  b.output(xNext, 'step_x_out', 'float32', ['n', C]);

  const [x0] = g.op('Scan', [v.xT, ...scanned], {
    name: '/diffusion/Scan',
    outputs: 1,
    attrs: {
      body: b,
      num_scan_inputs: scanned.length,
      // Reverse: the first iteration reads slice S−1 (spaced steps run i = S−1 … 0).
      scan_input_directions: scanned.map(() => 1),
    },
  });
  return x0;
}
