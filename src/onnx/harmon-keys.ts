/**
 * Every state-dict key Harmon's checkpoints hold, with its shape, derived from a HarmonConfig
 * (harmon-inference.md §1.3-§1.7). This map is what the loader asserts against, what the tiny
 * model's random weights are generated from, and what parameter counts are computed from.
 */
import type { HarmonConfig, VaeConfig } from '../model/config.ts';

export type Shape = readonly number[];

/** Sinusoidal timestep features fed to the diffusion MLP's time embedding (§1.6). */
export const TIME_FREQ_CHANNELS = 256;

export { isIgnoredKey, OPTIONAL_HARMON_KEYS } from './weights/key-rules.ts';

export interface ExpectedOptions {
  /** Include the VAE (HF-format exports hold it; the .pth files do not). Default false. */
  includeVae?: boolean;
  /** Prefix of VAE keys: 'vae.' in HF exports, '' inside kl16.ckpt. Default 'vae.'. */
  vaePrefix?: string;
}

function linear(m: Map<string, Shape>, name: string, out: number, inp: number, bias = true): void {
  m.set(`${name}.weight`, [out, inp]);
  if (bias) m.set(`${name}.bias`, [out]);
}

function norm(m: Map<string, Shape>, name: string, c: number, bias = true): void {
  m.set(`${name}.weight`, [c]);
  if (bias) m.set(`${name}.bias`, [c]);
}

function conv(m: Map<string, Shape>, name: string, out: number, inp: number, k: number): void {
  m.set(`${name}.weight`, [out, inp, k, k]);
  m.set(`${name}.bias`, [out]);
}

/** Qwen2 decoder (§1.3), prefix `llm.`; includes the optional tied `lm_head`. */
function llmKeys(m: Map<string, Shape>, c: HarmonConfig['llm']): void {
  const { hidden: H, intermediate: I } = c;
  const kv = c.kvHeads * c.headDim;
  m.set('llm.model.embed_tokens.weight', [c.vocab, H]);
  for (let l = 0; l < c.layers; l++) {
    const p = `llm.model.layers.${l}`;
    norm(m, `${p}.input_layernorm`, H, false);
    linear(m, `${p}.self_attn.q_proj`, c.heads * c.headDim, H);
    linear(m, `${p}.self_attn.k_proj`, kv, H);
    linear(m, `${p}.self_attn.v_proj`, kv, H);
    linear(m, `${p}.self_attn.o_proj`, H, c.heads * c.headDim, false);
    norm(m, `${p}.post_attention_layernorm`, H, false);
    linear(m, `${p}.mlp.gate_proj`, I, H, false);
    linear(m, `${p}.mlp.up_proj`, I, H, false);
    linear(m, `${p}.mlp.down_proj`, H, I, false);
  }
  norm(m, 'llm.model.norm', H, false);
  m.set('llm.lm_head.weight', [c.vocab, H]);
}

/** timm Block (§1.4). */
function vitBlock(m: Map<string, Shape>, p: string, D: number, hidden: number): void {
  norm(m, `${p}.norm1`, D);
  linear(m, `${p}.attn.qkv`, 3 * D, D);
  linear(m, `${p}.attn.proj`, D, D);
  norm(m, `${p}.norm2`, D);
  linear(m, `${p}.mlp.fc1`, hidden, D);
  linear(m, `${p}.mlp.fc2`, D, hidden);
}

/** MAR encoder/decoder (§1.4) and the diffusion MLP under `mar.diffloss.net.` (§1.6). */
function marKeys(m: Map<string, Shape>, cfg: HarmonConfig): void {
  const { width: D, mlpRatio, buffer, tokenChannels: C, nativeGrid } = cfg.mar;
  const seq = nativeGrid * nativeGrid;
  m.set('mar.fake_latent', [1, D]);
  m.set('mar.class_emb.weight', [cfg.mar.classes, D]);
  linear(m, 'mar.z_proj', D, C);
  norm(m, 'mar.z_proj_ln', D);
  m.set('mar.encoder_pos_embed_learned', [1, buffer + seq, D]);
  for (let i = 0; i < cfg.mar.encoderDepth; i++) vitBlock(m, `mar.encoder_blocks.${i}`, D, D * mlpRatio);
  norm(m, 'mar.encoder_norm', D);
  linear(m, 'mar.decoder_embed', D, D);
  m.set('mar.mask_token', [1, 1, D]);
  m.set('mar.decoder_pos_embed_learned', [1, buffer + seq, D]);
  for (let i = 0; i < cfg.mar.decoderDepth; i++) vitBlock(m, `mar.decoder_blocks.${i}`, D, D * mlpRatio);
  norm(m, 'mar.decoder_norm', D);
  m.set('mar.diffusion_pos_embed_learned', [1, seq, D]);

  const W = cfg.diffusion.width;
  const n = 'mar.diffloss.net';
  linear(m, `${n}.time_embed.mlp.0`, W, TIME_FREQ_CHANNELS);
  linear(m, `${n}.time_embed.mlp.2`, W, W);
  linear(m, `${n}.cond_embed`, W, D);
  linear(m, `${n}.input_proj`, W, C);
  for (let j = 0; j < cfg.diffusion.depth; j++) {
    const r = `${n}.res_blocks.${j}`;
    norm(m, `${r}.in_ln`, W);
    linear(m, `${r}.mlp.0`, W, W);
    linear(m, `${r}.mlp.2`, W, W);
    linear(m, `${r}.adaLN_modulation.1`, 3 * W, W);
  }
  linear(m, `${n}.final_layer.adaLN_modulation.1`, 2 * W, W);
  linear(m, `${n}.final_layer.linear`, 2 * C, W); // ε (C) + learned-variance value (C)
}

/** `proj_in` (MAR -> LLM) and `proj_out` (LLM -> MAR), each Linear-SiLU-Linear (§1.5). */
function projectorKeys(m: Map<string, Shape>, cfg: HarmonConfig): void {
  const H = cfg.llm.hidden;
  const D = cfg.mar.width;
  linear(m, 'proj_in.0', H, D);
  linear(m, 'proj_in.2', H, H);
  linear(m, 'proj_out.0', H, H);
  linear(m, 'proj_out.2', D, H);
}

function resnet(m: Map<string, Shape>, p: string, cin: number, cout: number): void {
  norm(m, `${p}.norm1`, cin);
  conv(m, `${p}.conv1`, cout, cin, 3);
  norm(m, `${p}.norm2`, cout);
  conv(m, `${p}.conv2`, cout, cout, 3);
  if (cin !== cout) conv(m, `${p}.nin_shortcut`, cout, cin, 1);
}

function attn(m: Map<string, Shape>, p: string, c: number): void {
  norm(m, `${p}.norm`, c);
  for (const x of ['q', 'k', 'v', 'proj_out']) conv(m, `${p}.${x}`, c, c, 1);
}

function mid(m: Map<string, Shape>, p: string, c: number): void {
  resnet(m, `${p}.block_1`, c, c);
  attn(m, `${p}.attn_1`, c);
  resnet(m, `${p}.block_2`, c, c);
}

/**
 * KL-16 VAE keys (§1.7), derived from chMult / numResBlocks: encoder level i has numResBlocks
 * blocks (attention after each block on the last level only) and a downsample except on the
 * last level; decoder level i has numResBlocks + 1 blocks and an upsample except on level 0.
 */
export function expectedVaeTensors(v: VaeConfig, prefix = ''): Map<string, Shape> {
  const m = new Map<string, Shape>();
  const levels = v.chMult.length;
  const top = v.ch * v.chMult[levels - 1];
  const e = `${prefix}encoder`;
  conv(m, `${e}.conv_in`, v.ch, 3, 3);
  let cin = v.ch;
  for (let i = 0; i < levels; i++) {
    const cout = v.ch * v.chMult[i];
    for (let b = 0; b < v.numResBlocks; b++) {
      resnet(m, `${e}.down.${i}.block.${b}`, cin, cout);
      cin = cout;
      if (i === levels - 1) attn(m, `${e}.down.${i}.attn.${b}`, cout);
    }
    if (i !== levels - 1) conv(m, `${e}.down.${i}.downsample.conv`, cout, cout, 3);
  }
  mid(m, `${e}.mid`, top);
  norm(m, `${e}.norm_out`, top);
  conv(m, `${e}.conv_out`, 2 * v.zChannels, top, 3);
  conv(m, `${prefix}quant_conv`, 2 * v.embedDim, 2 * v.zChannels, 1);
  conv(m, `${prefix}post_quant_conv`, v.zChannels, v.embedDim, 1);
  const d = `${prefix}decoder`;
  conv(m, `${d}.conv_in`, top, v.zChannels, 3);
  mid(m, `${d}.mid`, top);
  cin = top;
  // Stored by level index; the decoder runs them from the last level down to 0.
  for (let i = levels - 1; i >= 0; i--) {
    const cout = v.ch * v.chMult[i];
    for (let b = 0; b <= v.numResBlocks; b++) {
      resnet(m, `${d}.up.${i}.block.${b}`, cin, cout);
      cin = cout;
    }
    if (i !== 0) conv(m, `${d}.up.${i}.upsample.conv`, cout, cout, 3);
  }
  norm(m, `${d}.norm_out`, cin);
  conv(m, `${d}.conv_out`, 3, cin, 3);
  return m;
}

/** All Harmon tensors for a config: llm.*, mar.* (incl. diffloss), proj_in/out, and optionally the VAE. */
export function expectedHarmonTensors(
  config: HarmonConfig,
  options: ExpectedOptions = {},
): Map<string, Shape> {
  const m = new Map<string, Shape>();
  llmKeys(m, config.llm);
  marKeys(m, config);
  projectorKeys(m, config);
  if (options.includeVae)
    for (const [k, s] of expectedVaeTensors(config.vae, options.vaePrefix ?? 'vae.')) m.set(k, s);
  return m;
}
