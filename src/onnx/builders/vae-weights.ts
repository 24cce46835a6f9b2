/**
 * The KL-16 VAE's checkpoint keys and shapes (spec §1.7), derived from VaeConfig. Used by the
 * tiny-weight generator and by loaders to assert every expected tensor; the builders read the
 * same keys through `weight()`, which checks each shape again.
 */
import type { VaeConfig } from '../../model/config.ts';

export type ShapeMap = Map<string, number[]>;

/** Channel width of level i: ch · chMult[i]. */
export const levelWidth = (vae: VaeConfig, level: number): number => vae.ch * vae.chMult[level];

function conv(out: ShapeMap, key: string, cout: number, cin: number, k: number): void {
  out.set(`${key}.weight`, [cout, cin, k, k]);
  out.set(`${key}.bias`, [cout]);
}

function norm(out: ShapeMap, key: string, c: number): void {
  out.set(`${key}.weight`, [c]);
  out.set(`${key}.bias`, [c]);
}

function resnet(out: ShapeMap, key: string, cin: number, cout: number): void {
  norm(out, `${key}.norm1`, cin);
  conv(out, `${key}.conv1`, cout, cin, 3);
  norm(out, `${key}.norm2`, cout);
  conv(out, `${key}.conv2`, cout, cout, 3);
  if (cin !== cout) conv(out, `${key}.nin_shortcut`, cout, cin, 1);
}

function attn(out: ShapeMap, key: string, c: number): void {
  norm(out, `${key}.norm`, c);
  for (const p of ['q', 'k', 'v', 'proj_out']) conv(out, `${key}.${p}`, c, c, 1);
}

function mid(out: ShapeMap, prefix: string, c: number): void {
  resnet(out, `${prefix}.mid.block_1`, c, c);
  attn(out, `${prefix}.mid.attn_1`, c);
  resnet(out, `${prefix}.mid.block_2`, c, c);
}

/** Encoder keys plus `quant_conv` (everything `vae_encoder.onnx` reads). */
export function vaeEncoderShapes(vae: VaeConfig): ShapeMap {
  const out: ShapeMap = new Map();
  const last = vae.chMult.length - 1;
  conv(out, 'encoder.conv_in', vae.ch, 3, 3);
  let cin = vae.ch;
  for (let i = 0; i <= last; i++) {
    const cout = levelWidth(vae, i);
    for (let j = 0; j < vae.numResBlocks; j++) {
      resnet(out, `encoder.down.${i}.block.${j}`, j === 0 ? cin : cout, cout);
      if (i === last) attn(out, `encoder.down.${i}.attn.${j}`, cout);
    }
    if (i !== last) conv(out, `encoder.down.${i}.downsample.conv`, cout, cout, 3);
    cin = cout;
  }
  mid(out, 'encoder', cin);
  norm(out, 'encoder.norm_out', cin);
  conv(out, 'encoder.conv_out', 2 * vae.zChannels, cin, 3);
  conv(out, 'quant_conv', 2 * vae.embedDim, 2 * vae.zChannels, 1);
  return out;
}

/** `post_quant_conv` plus decoder keys (everything `vae_decoder.onnx` reads). */
export function vaeDecoderShapes(vae: VaeConfig): ShapeMap {
  const out: ShapeMap = new Map();
  const last = vae.chMult.length - 1;
  conv(out, 'post_quant_conv', vae.zChannels, vae.embedDim, 1);
  let cin = levelWidth(vae, last);
  conv(out, 'decoder.conv_in', cin, vae.zChannels, 3);
  mid(out, 'decoder', cin);
  for (let i = last; i >= 0; i--) {
    const cout = levelWidth(vae, i);
    for (let j = 0; j <= vae.numResBlocks; j++)
      resnet(out, `decoder.up.${i}.block.${j}`, j === 0 ? cin : cout, cout);
    if (i !== 0) conv(out, `decoder.up.${i}.upsample.conv`, cout, cout, 3);
    cin = cout;
  }
  norm(out, 'decoder.norm_out', cin);
  conv(out, 'decoder.conv_out', 3, cin, 3);
  return out;
}

/** Every VAE key (un-prefixed, as inside kl16.ckpt). */
export function vaeShapes(vae: VaeConfig): ShapeMap {
  return new Map([...vaeEncoderShapes(vae), ...vaeDecoderShapes(vae)]);
}
