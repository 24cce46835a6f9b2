/**
 * timm 0.9.12 `vision_transformer.Block` as MAR instantiates it (spec §1.4), shared by the MAR
 * encoder and decoder builders.
 *
 *   x ─┬─ LayerNorm(norm1, 1e-6) ─ qkv Linear(D→3D, bias) ─ Split [q | k | v] ─┐
 *      │                                                                       │
 *      │      MultiHeadAttention(nh, scale hd^-0.5, no mask) ◄─────────────────┘
 *      │                          │
 *      │                  proj Linear(D→D, bias)
 *      └──────────── Add ◄────────┘
 *                     │
 *      ┌──────────────┤
 *      │   LayerNorm(norm2) ─ fc1(D→4D) ─ GELU(erf) ─ fc2(4D→D)
 *      └──────────── Add ◄────────────────────────────────────┘
 *
 * The qkv output channels are `[q(all heads) | k(all heads) | v(all heads)]`, each head-major,
 * which is exactly the layout com.microsoft MultiHeadAttention expects for separate 3-D q/k/v
 * inputs ([B,S,D] with head h owning channels h·hd…h·hd+hd−1). Splitting the fused output per
 * head (interleaved q,k,v) instead would be a silent accuracy bug; the MAR tests check it.
 */
import { AppError } from '../../shared/errors.ts';
import { float } from '../graph/attributes.ts';
import type { BuildContext } from '../graph/context.ts';
import { gelu, layerNorm, linear } from '../graph/layers.ts';

export interface VitBlockShape {
  width: number; // D
  heads: number;
  mlpRatio: number;
  lnEps: number;
}

/** One pre-norm ViT block over `x` [B,S,D]; `key` is the block's checkpoint prefix. */
export function vitBlock(ctx: BuildContext, x: string, key: string, shape: VitBlockShape): string {
  const { g } = ctx;
  const { width: d, heads, mlpRatio, lnEps } = shape;
  const hd = d / heads;
  if (!Number.isInteger(hd))
    throw new AppError('BAD_CONFIG', `ViT width ${d} is not divisible by ${heads} heads`);
  const hidden = d * mlpRatio;

  const attnOut = g.scope('attn', () => {
    const a = g.scope('norm1', () => layerNorm(ctx, x, `${key}.norm1`, d, lnEps));
    const qkv = linear(ctx, a, `${key}.attn.qkv`, d, 3 * d); // [B,S,3D]
    const [q, k, v] = g.op('Split', [qkv, g.ints([d, d, d])], { attrs: { axis: -1 }, outputs: 3 }); // 3 × [B,S,D]
    const ctxV = g.op1('MultiHeadAttention', [q, k, v], {
      domain: 'com.microsoft',
      attrs: { num_heads: heads, scale: float(hd ** -0.5) },
    }); // [B,S,D], heads concatenated head-major
    return linear(ctx, ctxV, `${key}.attn.proj`, d, d);
  });
  const x1 = g.op1('Add', [x, attnOut], { name: `${g.path}/attn_residual/Add` });

  const mlpOut = g.scope('mlp', () => {
    const b = g.scope('norm2', () => layerNorm(ctx, x1, `${key}.norm2`, d, lnEps));
    const h = linear(ctx, b, `${key}.mlp.fc1`, d, hidden);
    return linear(ctx, gelu(ctx, h), `${key}.mlp.fc2`, hidden, d);
  });
  return g.op1('Add', [x1, mlpOut], { name: `${g.path}/mlp_residual/Add` });
}

/** A stack of blocks `${prefix}.{i}` under scopes `${scopeName}.{i}`. */
export function vitBlocks(
  ctx: BuildContext,
  x: string,
  prefix: string,
  depth: number,
  shape: VitBlockShape,
): string {
  const segment = prefix.split('.').slice(-1)[0];
  let y = x;
  for (let i = 0; i < depth; i++)
    y = ctx.g.scope(`${segment}.${i}`, () => vitBlock(ctx, y, `${prefix}.${i}`, shape));
  return y;
}
