/**
 * Diffusion MLP ("SimpleMLPAdaLN", spec §1.6, §6.8): one network evaluation. The pieces are
 * exported separately so the fused sampler (diffusion-sampler.ts) emits the SAME construction
 * inside its Loop body, with `cond_embed(c)` hoisted out of the loop and the timestep embedding
 * of the 100 τ values computed from constants (ONNX Runtime folds it at session creation).
 *
 *   t [R] ──×freqs──► [cos ‖ sin] [R,256] ──time_embed.mlp.0──SiLU──mlp.2──► temb [R,W] ─┐
 *   c [R,D] ──cond_embed──────────────────────────────────────────────────► cond [R,W] ─┴─(+)─► y
 *   x [R,16] ──input_proj──► h [R,W]
 *   depth × ResBlock:  [shift|scale|gate] = adaLN(SiLU(y))
 *                      h += gate · mlp.2(SiLU(mlp.0(LN(h)·(1+scale)+shift)))
 *   final:             [shift|scale] = adaLN(SiLU(y));  out = linear(LN_noaffine(h)·(1+scale)+shift)
 *   out [R,32] = ε̂ (0..15) ‖ v (16..31)
 */
import type { HarmonConfig } from '../../model/config.ts';
import { float } from '../graph/attributes.ts';
import { type BuildContext, transpose2d, type WeightDType, weight } from '../graph/context.ts';
import { GraphBuilder } from '../graph/graph-builder.ts';
import type { WeightSource } from '../weights/types.ts';

export const DIFFUSION_KEY_PREFIX = 'mar.diffloss.net.';
export const TOKEN_CHANNELS = 16;
export const OUT_CHANNELS = 32;
const FREQ_HALF = 128; // 256-wide sinusoidal embedding
const MAX_PERIOD = 10000;

export interface DiffusionBuildOptions {
  weightDType?: WeightDType;
  keyPrefix?: string;
}

interface LinearParams {
  w: string; // [in, out] (transposed from PyTorch's [out, in])
  b: string; // [out]
}

/** fp32 value names of every weight, added once to the ROOT graph (Loop bodies reference them). */
export interface DiffusionMlpParams {
  width: number;
  eps: number;
  timeEmbed0: LinearParams;
  timeEmbed2: LinearParams;
  condEmbed: LinearParams;
  inputProj: LinearParams;
  blocks: { lnW: string; lnB: string; mlp0: LinearParams; mlp2: LinearParams; ada: LinearParams }[];
  finalAda: LinearParams;
  finalLinear: LinearParams;
  ones: string; // [W] for the affine-free final LayerNorm
  zeros: string;
}

function linearParams(ctx: BuildContext, key: string, inF: number, outF: number): LinearParams {
  const full = DIFFUSION_KEY_PREFIX + key;
  return {
    w: weight(ctx, `${full}.weight`, [inF, outF], (d) => transpose2d(d, outF, inF)),
    b: weight(ctx, `${full}.bias`, [outF]),
  };
}

export function diffusionMlpParams(ctx: BuildContext, config: HarmonConfig): DiffusionMlpParams {
  const W = config.diffusion.width;
  const D = config.mar.width;
  const blocks = Array.from({ length: config.diffusion.depth }, (_, j) => ({
    lnW: weight(ctx, `${DIFFUSION_KEY_PREFIX}res_blocks.${j}.in_ln.weight`, [W]),
    lnB: weight(ctx, `${DIFFUSION_KEY_PREFIX}res_blocks.${j}.in_ln.bias`, [W]),
    mlp0: linearParams(ctx, `res_blocks.${j}.mlp.0`, W, W),
    mlp2: linearParams(ctx, `res_blocks.${j}.mlp.2`, W, W),
    ada: linearParams(ctx, `res_blocks.${j}.adaLN_modulation.1`, W, 3 * W),
  }));
  return {
    width: W,
    eps: config.diffusion.lnEps,
    timeEmbed0: linearParams(ctx, 'time_embed.mlp.0', 2 * FREQ_HALF, W),
    timeEmbed2: linearParams(ctx, 'time_embed.mlp.2', W, W),
    condEmbed: linearParams(ctx, 'cond_embed', D, W),
    inputProj: linearParams(ctx, 'input_proj', TOKEN_CHANNELS, W),
    blocks,
    finalAda: linearParams(ctx, 'final_layer.adaLN_modulation.1', W, 2 * W),
    finalLinear: linearParams(ctx, 'final_layer.linear', W, OUT_CHANNELS),
    ones: ctx.g.constant('float32', [W], new Array(W).fill(1)),
    zeros: ctx.g.constant('float32', [W], new Array(W).fill(0)),
  };
}

function dense(g: GraphBuilder, scope: string, x: string, p: LinearParams): string {
  return g.scope(scope, () => g.op1('Add', [g.op1('MatMul', [x, p.w]), p.b]));
}

function silu(g: GraphBuilder, x: string): string {
  return g.op1('Mul', [x, g.op1('Sigmoid', [x])]);
}

/** x·(1 + scale) + shift — the adaLN modulation. */
function modulate(g: GraphBuilder, x: string, shift: string, scale: string): string {
  return g.op1('Add', [g.op1('Mul', [x, g.op1('Add', [scale, g.scalar(1)])]), shift]);
}

/** f[k] = exp(−ln(10⁴)·k/128), k = 0…127, as float32 (the reference builds it in fp32). */
export function timestepFrequencies(): number[] {
  return Array.from({ length: FREQ_HALF }, (_, k) =>
    Math.fround(Math.exp((-Math.log(MAX_PERIOD) * k) / FREQ_HALF)),
  );
}

/** t [R] f32 (original 0…999 scale) -> temb [R, W]. Embedding is [cos ‖ sin] (cos FIRST). */
export function timestepEmbedding(g: GraphBuilder, p: DiffusionMlpParams, t: string): string {
  return g.scope('time_embed', () => {
    const freqs = g.constant('float32', [1, FREQ_HALF], timestepFrequencies());
    const t2 = g.op1('Unsqueeze', [t, g.ints([1])]); // [R] -> [R,1]
    const arg = g.op1('Mul', [t2, freqs]); // [R,128]
    const emb = g.op1('Concat', [g.op1('Cos', [arg]), g.op1('Sin', [arg])], { attrs: { axis: -1 } }); // [R,256]
    const h = silu(g, dense(g, 'mlp.0', emb, p.timeEmbed0));
    return dense(g, 'mlp.2', h, p.timeEmbed2);
  });
}

/** c [R, D] -> [R, W]. Constant over the 100 steps of one MAR step: hoisted by the sampler. */
export function condEmbedding(g: GraphBuilder, p: DiffusionMlpParams, c: string): string {
  return dense(g, 'cond_embed', c, p.condEmbed);
}

/**
 * Everything after `y = temb + cond_embed(c)`: x [R,16], y [R,W] -> out [R,32].
 * Emitted into whichever graph `g` is (the model root or a Loop body).
 */
export function diffusionMlpTrunk(g: GraphBuilder, p: DiffusionMlpParams, x: string, y: string): string {
  const W = p.width;
  const ln = (v: string, w: string, b: string) =>
    g.op1('LayerNormalization', [v, w, b], { attrs: { axis: -1, epsilon: float(p.eps) } });
  // SiLU(y) feeds every adaLN linear; compute it once.
  const ys = silu(g, y);
  let h = dense(g, 'input_proj', x, p.inputProj);
  p.blocks.forEach((blk, j) => {
    h = g.scope(`res_blocks.${j}`, () => {
      const mod = dense(g, 'adaLN_modulation', ys, blk.ada); // [R,3W]
      const [shift, scale, gate] = g.op('Split', [mod, g.ints([W, W, W])], {
        outputs: 3,
        attrs: { axis: -1 },
      });
      let u = modulate(g, ln(h, blk.lnW, blk.lnB), shift, scale);
      u = dense(g, 'mlp.2', silu(g, dense(g, 'mlp.0', u, blk.mlp0)), blk.mlp2);
      return g.op1('Add', [h, g.op1('Mul', [gate, u])]);
    });
  });
  return g.scope('final_layer', () => {
    const mod = dense(g, 'adaLN_modulation', ys, p.finalAda); // [R,2W]
    const [shift, scale] = g.op('Split', [mod, g.ints([W, W])], { outputs: 2, attrs: { axis: -1 } });
    const u = modulate(g, ln(h, p.ones, p.zeros), shift, scale);
    return dense(g, 'linear', u, p.finalLinear);
  });
}

/** diffusion_mlp.onnx (§6.8): x [R,16], t [R] f32, c [R,D] -> out [R,32]. */
export function buildDiffusionMlp(
  config: HarmonConfig,
  weights: WeightSource,
  opts: DiffusionBuildOptions = {},
): GraphBuilder {
  const g = new GraphBuilder('diffusion_mlp');
  const ctx: BuildContext = {
    g,
    weights,
    weightDType: opts.weightDType ?? 'float32',
    keyPrefix: opts.keyPrefix,
  };
  const x = g.input('x', 'float32', ['R', TOKEN_CHANNELS]);
  const t = g.input('t', 'float32', ['R']);
  const c = g.input('c', 'float32', ['R', config.mar.width]);
  const p = diffusionMlpParams(ctx, config);
  const out = g.scope('diffusion', () => {
    const y = g.op1('Add', [timestepEmbedding(g, p, t), condEmbedding(g, p, c)]);
    return diffusionMlpTrunk(g, p, x, y);
  });
  g.output(out, 'out', 'float32', ['R', OUT_CHANNELS]);
  return g;
}
