/**
 * Reusable layer helpers shared by the module builders. Each emits a handful of ops under the
 * current scope and returns the output value name.
 */
import { float } from './attributes.ts';
import { type BuildContext, transpose2d, weight } from './context.ts';

/** PyTorch Linear: y = x·Wᵀ + b with W stored [out, in]; emitted as MatMul(x, Wᵀ) (+ Add). */
export function linear(
  ctx: BuildContext,
  x: string,
  key: string,
  inF: number,
  outF: number,
  bias = true,
): string {
  const { g } = ctx;
  // Node path uses the module's own attribute name (q_proj, fc1...); callers scope the parents.
  return g.scope(key.split('.').slice(-1)[0], () => {
    const w = weight(ctx, `${key}.weight`, [inF, outF], (d) => transpose2d(d, outF, inF));
    const y = g.op1('MatMul', [x, w]);
    if (!bias) return y;
    const b = weight(ctx, `${key}.bias`, [outF]);
    return g.op1('Add', [y, b]);
  });
}

/** LayerNorm over the last axis; `key` undefined = no affine parameters (diffusion final layer). */
export function layerNorm(
  ctx: BuildContext,
  x: string,
  key: string | undefined,
  width: number,
  eps: number,
): string {
  const { g } = ctx;
  const scale = key
    ? weight(ctx, `${key}.weight`, [width])
    : g.constant('float32', [width], new Array(width).fill(1));
  const bias = key
    ? weight(ctx, `${key}.bias`, [width])
    : g.constant('float32', [width], new Array(width).fill(0));
  return g.op1('LayerNormalization', [x, scale, bias], { attrs: { axis: -1, epsilon: float(eps) } });
}

/** Qwen2 RMSNorm: x / sqrt(mean(x²) + eps) · w (SimplifiedLayerNormalization, fp32 statistics). */
export function rmsNorm(ctx: BuildContext, x: string, key: string, width: number, eps: number): string {
  const w = weight(ctx, `${key}.weight`, [width]);
  return ctx.g.op1('SimplifiedLayerNormalization', [x, w], { attrs: { axis: -1, epsilon: float(eps) } });
}

/** x·sigmoid(x) (SiLU / swish). */
export function silu(ctx: BuildContext, x: string): string {
  const s = ctx.g.op1('Sigmoid', [x]);
  return ctx.g.op1('Mul', [x, s]);
}

/** Exact erf GELU (timm nn.GELU default), ai.onnx Gelu-20 with approximate='none'. */
export function gelu(ctx: BuildContext, x: string): string {
  return ctx.g.op1('Gelu', [x], { attrs: { approximate: 'none' } });
}
