/**
 * KL-16 VAE building blocks (LDM `AutoencoderKL`, spec §1.7) shared by the encoder and decoder
 * builders. Every helper scopes its nodes under the last segment of its checkpoint key
 * (`block.0`, `attn_1`, `conv_in`); callers open the parent scopes (`/encoder/down.4/...`).
 * All tensors are NCHW fp32 with dynamic batch and spatial dims.
 */
import type { VaeConfig } from '../../model/config.ts';
import { float } from '../graph/attributes.ts';
import { type BuildContext, weight } from '../graph/context.ts';
import { silu } from '../graph/layers.ts';

/** 'encoder.down.0.block.1' -> 'block.1'; 'encoder.mid.attn_1' -> 'attn_1'. */
export function lastSegment(key: string): string {
  const parts = key.split('.');
  const tail = parts[parts.length - 1];
  return /^\d+$/.test(tail) ? `${parts[parts.length - 2]}.${tail}` : tail;
}

export interface ConvOptions {
  stride?: number;
  /** ONNX pads [top, left, bottom, right]; default "same" for odd kernels. */
  pads?: number[];
}

/** PyTorch Conv2d with bias; weight [cout, cin, k, k] stored under `${key}.weight`. */
export function conv2d(
  ctx: BuildContext,
  x: string,
  key: string,
  cin: number,
  cout: number,
  k: number,
  opts: ConvOptions = {},
): string {
  const { g } = ctx;
  return g.scope(lastSegment(key), () => {
    const w = weight(ctx, `${key}.weight`, [cout, cin, k, k]);
    const b = weight(ctx, `${key}.bias`, [cout]);
    const p = (k - 1) / 2;
    const s = opts.stride ?? 1;
    return g.op1('Conv', [x, w, b], {
      attrs: {
        kernel_shape: [k, k],
        strides: [s, s],
        pads: opts.pads ?? [p, p, p, p],
        dilations: [1, 1],
        group: 1,
      },
    });
  });
}

/**
 * `Normalize`: GroupNorm(groups, eps, affine) as ai.onnx GroupNormalization-21, whose scale and
 * bias are per channel (opset 18's per-group variant was a spec bug; com.microsoft GroupNorm has
 * no CPU kernel). Statistics in fp32 (stash_type 1).
 */
export function groupNorm(ctx: BuildContext, x: string, key: string, c: number, vae: VaeConfig): string {
  const { g } = ctx;
  return g.scope(lastSegment(key), () => {
    const scale = weight(ctx, `${key}.weight`, [c]);
    const bias = weight(ctx, `${key}.bias`, [c]);
    return g.op1('GroupNormalization', [x, scale, bias], {
      attrs: { epsilon: float(vae.eps), num_groups: vae.groups, stash_type: 1 },
    });
  });
}

/** Swish x·sigmoid(x) (the VAE's `nonlinearity`). */
export const swish = silu;

/*
 * ResnetBlock(cin -> cout), no timestep embedding, dropout 0:
 *
 *   x ─ norm1 ─ swish ─ conv1 ─ norm2 ─ swish ─ conv2 ─┐
 *   │                                                  (+) ─ out
 *   └────────── nin_shortcut (1×1, only if cin≠cout) ──┘
 */
export function resnetBlock(
  ctx: BuildContext,
  x: string,
  key: string,
  cin: number,
  cout: number,
  vae: VaeConfig,
): string {
  const { g } = ctx;
  return g.scope(lastSegment(key), () => {
    let h = swish(ctx, groupNorm(ctx, x, `${key}.norm1`, cin, vae));
    h = conv2d(ctx, h, `${key}.conv1`, cin, cout, 3);
    h = swish(ctx, groupNorm(ctx, h, `${key}.norm2`, cout, vae));
    h = conv2d(ctx, h, `${key}.conv2`, cout, cout, 3);
    const shortcut = cin === cout ? x : conv2d(ctx, x, `${key}.nin_shortcut`, cin, cout, 1);
    return g.op1('Add', [shortcut, h]);
  });
}

/*
 * AttnBlock(c): single-head self-attention over the h·w grid positions.
 *
 *   x ─ norm ─┬─ q (1×1) ─ [B,c,hw]ᵀ ─┐
 *             ├─ k (1×1) ─ [B,c,hw] ──MatMul·c^-0.5─ Softmax(keys) = w [B,hw_q,hw_k]
 *             └─ v (1×1) ─ [B,c,hw] ────────────── MatMul(v, wᵀ) [B,c,hw_q] ─ reshape ─ proj_out ─┐
 *   x ────────────────────────────────────────────────────────────────────────────────────────(+)─ out
 */
export function attnBlock(ctx: BuildContext, x: string, key: string, c: number, vae: VaeConfig): string {
  const { g } = ctx;
  return g.scope(lastSegment(key), () => {
    const n = groupNorm(ctx, x, `${key}.norm`, c, vae);
    const flat = g.ints([0, 0, -1]);
    // [B,c,h,w] -> [B,c,hw]
    const q = g.op1('Reshape', [conv2d(ctx, n, `${key}.q`, c, c, 1), flat]);
    const k = g.op1('Reshape', [conv2d(ctx, n, `${key}.k`, c, c, 1), flat]);
    const v = g.op1('Reshape', [conv2d(ctx, n, `${key}.v`, c, c, 1), flat]);
    const qT = g.op1('Transpose', [q], { attrs: { perm: [0, 2, 1] } }); // [B,c,hw] -> [B,hw,c]
    const scores = g.op1('Mul', [g.op1('MatMul', [qT, k]), g.scalar(c ** -0.5)]); // [B,hw_q,hw_k]
    const w = g.op1('Softmax', [scores], { attrs: { axis: -1 } });
    const wT = g.op1('Transpose', [w], { attrs: { perm: [0, 2, 1] } }); // [B,hw_k,hw_q]
    const h = g.op1('MatMul', [v, wT]); // [B,c,hw_k]·[B,hw_k,hw_q] -> [B,c,hw_q]
    const hGrid = g.op1('Reshape', [h, g.op1('Shape', [x])]); // [B,c,hw] -> [B,c,h,w]
    return g.op1('Add', [x, conv2d(ctx, hGrid, `${key}.proj_out`, c, c, 1)]);
  });
}

/**
 * Encoder Downsample: zero-pad ONE column on the right and ONE row at the bottom, then a 3×3
 * stride-2 conv with no padding. A symmetric pad-1 conv shifts every latent by half a pixel
 * (spec §5.1 #15), so the pad is an explicit Pad node: plain to read and independent of how an execution
 * provider handles asymmetric Conv pads.
 */
export function downsample(ctx: BuildContext, x: string, key: string, c: number): string {
  const { g } = ctx;
  return g.scope(lastSegment(key), () => {
    // pads = [begin B,C,H,W, end B,C,H,W]: only H-end and W-end get 1.
    const padded = g.op1('Pad', [x, g.ints([0, 0, 0, 0, 0, 0, 1, 1])], { attrs: { mode: 'constant' } });
    return conv2d(ctx, padded, `${key}.conv`, c, c, 3, { stride: 2, pads: [0, 0, 0, 0] });
  });
}

/** Decoder Upsample: nearest ×2 (pixel replication), then a 3×3 conv, pad 1. */
export function upsample(ctx: BuildContext, x: string, key: string, c: number): string {
  const { g } = ctx;
  return g.scope(lastSegment(key), () => {
    // asymmetric + floor maps output i to input floor(i/2): exact replication for scale 2.
    const up = g.op1('Resize', [x, '', g.constant('float32', [4], [1, 1, 2, 2])], {
      attrs: { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' },
    });
    return conv2d(ctx, up, `${key}.conv`, c, c, 3);
  });
}

/** The `mid` stack shared by encoder and decoder: block_1, attn_1, block_2 at width c. */
export function midBlock(ctx: BuildContext, x: string, prefix: string, c: number, vae: VaeConfig): string {
  return ctx.g.scope('mid', () => {
    let h = resnetBlock(ctx, x, `${prefix}.mid.block_1`, c, c, vae);
    h = attnBlock(ctx, h, `${prefix}.mid.attn_1`, c, vae);
    return resnetBlock(ctx, h, `${prefix}.mid.block_2`, c, c, vae);
  });
}
