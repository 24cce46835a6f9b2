/**
 * `vae_decoder.onnx` (spec §1.7, §2.9, §6.2): channel-last scaled latent tokens -> pixels
 * (unclamped fp32, NCHW) and 8-bit RGB (NHWC).
 */
import type { HarmonConfig } from '../../model/config.ts';
import type { BuildContext } from '../graph/context.ts';
import { GraphBuilder } from '../graph/graph-builder.ts';
import type { WeightSource } from '../weights/types.ts';
import { conv2d, groupNorm, midBlock, resnetBlock, swish, upsample } from './vae-blocks.ts';
import type { VaeBuildOptions } from './vae-encoder.ts';
import { levelWidth } from './vae-weights.ts';

/*
 * latents [B,h,w,16]
 *   └ ÷ scale, [B,h,w,16] -> [B,16,h,w]
 *   └ post_quant_conv 1×1, decoder.conv_in 3×3 (-> ch·chMult[L-1])
 *   └ mid: block_1, attn_1, block_2            (the only attention in the decoder)
 *   └ up.i, i = L-1 .. 0 (width ch·chMult[i]):
 *       (numResBlocks + 1) × ResnetBlock
 *       Upsample (nearest ×2, 3×3 conv)          for i > 0
 *   └ norm_out, swish, conv_out 3×3 (-> 3)      no tanh / clamp
 *   ├ pixels [B,3,16h,16w]
 *   └ rgb = floor(clip(127.5·x + 128, 0, 255)) as uint8, [B,3,H,W] -> [B,H,W,3]
 */
export function buildVaeDecoder(
  config: HarmonConfig,
  weights: WeightSource,
  opts: VaeBuildOptions = {},
): GraphBuilder {
  const vae = config.vae;
  const g = new GraphBuilder('vae_decoder');
  const ctx: BuildContext = {
    g,
    weights,
    weightDType: opts.weightDType ?? 'float32',
    keyPrefix: opts.keyPrefix,
  };
  const last = vae.chMult.length - 1;
  const tokens = g.input('latents', 'float32', ['batch', 'latent_height', 'latent_width', vae.embedDim]);

  const z = g.scope('posterior', () => {
    const unscaled = g.op1('Div', [tokens, g.scalar(vae.scale)]);
    const nchw = g.op1('Transpose', [unscaled], { attrs: { perm: [0, 3, 1, 2] } }); // [B,h,w,16] -> [B,16,h,w]
    return conv2d(ctx, nchw, 'post_quant_conv', vae.embedDim, vae.zChannels, 1);
  });

  const pixels = g.scope('decoder', () => {
    let cin = levelWidth(vae, last);
    let h = conv2d(ctx, z, 'decoder.conv_in', vae.zChannels, cin, 3);
    h = midBlock(ctx, h, 'decoder', cin, vae);
    for (let i = last; i >= 0; i--) {
      const cout = levelWidth(vae, i);
      h = g.scope(`up.${i}`, () => {
        let y = h;
        for (let j = 0; j <= vae.numResBlocks; j++) {
          y = resnetBlock(ctx, y, `decoder.up.${i}.block.${j}`, j === 0 ? cin : cout, cout, vae);
        }
        return i === 0 ? y : upsample(ctx, y, `decoder.up.${i}.upsample`, cout);
      });
      cin = cout;
    }
    h = swish(ctx, groupNorm(ctx, h, 'decoder.norm_out', cin, vae));
    return conv2d(ctx, h, 'decoder.conv_out', cin, 3, 3);
  });
  g.output(pixels, 'pixels', 'float32', ['batch', 3, 'height', 'width']);

  const rgb = g.scope('to_uint8', () => {
    // +128 (not +127.5) so the truncating cast rounds 127.5x + 127.5 half-up (spec §2.9).
    const v = g.op1('Add', [g.op1('Mul', [pixels, g.scalar(127.5)]), g.scalar(128)]);
    const clipped = g.op1('Clip', [v, g.scalar(0), g.scalar(255)]);
    const bytes = g.op1('Cast', [g.op1('Floor', [clipped])], { attrs: { to: 2 } }); // 2 = uint8
    return g.op1('Transpose', [bytes], { attrs: { perm: [0, 2, 3, 1] } }); // [B,3,H,W] -> [B,H,W,3]
  });
  g.output(rgb, 'rgb', 'uint8', ['batch', 'height', 'width', 3]);
  return g;
}
