/**
 * `vae_encoder.onnx` (spec §1.7, §4.2, §6.1): pixels in [-1, 1] -> scaled posterior mean as
 * channel-last latent tokens. Structure derived from VaeConfig (real KL-16: ch 128,
 * chMult (1,1,2,2,4), 2 blocks per level; the tiny config only narrows it).
 */
import type { HarmonConfig } from '../../model/config.ts';
import type { BuildContext, WeightDType } from '../graph/context.ts';
import { GraphBuilder } from '../graph/graph-builder.ts';
import type { WeightSource } from '../weights/types.ts';
import { attnBlock, conv2d, downsample, groupNorm, midBlock, resnetBlock, swish } from './vae-blocks.ts';
import { levelWidth } from './vae-weights.ts';

export interface VaeBuildOptions {
  weightDType?: WeightDType;
  /** 'vae.' for HF-format checkpoints; none for kl16.ckpt. */
  keyPrefix?: string;
}

/*
 * pixel_values [B,3,H,W]
 *   └ conv_in 3×3 (3 -> ch)
 *   └ down.i, i = 0..L-1 (width ch·chMult[i]):
 *       numResBlocks × ResnetBlock   (+ AttnBlock after each block at the LAST level only:
 *                                      attention sits at stride 16 whatever the image size)
 *       Downsample (pad right/bottom 1, 3×3 stride 2)   for i < L-1
 *   └ mid: block_1, attn_1, block_2
 *   └ norm_out, swish, conv_out 3×3 (-> 2·zChannels)
 *   └ quant_conv 1×1 (-> 2·embedDim) = moments; mean = channels [0, embedDim)  (logvar unused)
 *   └ × scale, [B,16,h,w] -> [B,h,w,16]
 * latents [B,H/16,W/16,16]
 */
export function buildVaeEncoder(
  config: HarmonConfig,
  weights: WeightSource,
  opts: VaeBuildOptions = {},
): GraphBuilder {
  const vae = config.vae;
  const g = new GraphBuilder('vae_encoder');
  const ctx: BuildContext = {
    g,
    weights,
    weightDType: opts.weightDType ?? 'float32',
    keyPrefix: opts.keyPrefix,
  };
  const last = vae.chMult.length - 1;
  const x = g.input('pixel_values', 'float32', ['batch', 3, 'height', 'width']);

  const moments = g.scope('encoder', () => {
    let h = conv2d(ctx, x, 'encoder.conv_in', 3, vae.ch, 3);
    let cin = vae.ch;
    for (let i = 0; i <= last; i++) {
      const cout = levelWidth(vae, i);
      h = g.scope(`down.${i}`, () => {
        let y = h;
        for (let j = 0; j < vae.numResBlocks; j++) {
          y = resnetBlock(ctx, y, `encoder.down.${i}.block.${j}`, j === 0 ? cin : cout, cout, vae);
          if (i === last) y = attnBlock(ctx, y, `encoder.down.${i}.attn.${j}`, cout, vae);
        }
        return i === last ? y : downsample(ctx, y, `encoder.down.${i}.downsample`, cout);
      });
      cin = cout;
    }
    h = midBlock(ctx, h, 'encoder', cin, vae);
    h = swish(ctx, groupNorm(ctx, h, 'encoder.norm_out', cin, vae));
    return conv2d(ctx, h, 'encoder.conv_out', cin, 2 * vae.zChannels, 3);
  });

  const latents = g.scope('posterior', () => {
    const m = conv2d(ctx, moments, 'quant_conv', 2 * vae.zChannels, 2 * vae.embedDim, 1);
    // [B,2·embedDim,h,w] -> mean [B,embedDim,h,w]: inference uses the mode, never a sample.
    const mean = g.op1('Slice', [m, g.ints([0]), g.ints([vae.embedDim]), g.ints([1])]);
    const scaled = g.op1('Mul', [mean, g.scalar(vae.scale)]);
    return g.op1('Transpose', [scaled], { attrs: { perm: [0, 2, 3, 1] } }); // [B,16,h,w] -> [B,h,w,16]
  });
  g.output(latents, 'latents', 'float32', ['batch', 'latent_height', 'latent_width', vae.embedDim]);
  return g;
}
