/**
 * Independent float64 reference of the KL-16 VAE (spec §1.7, §2.9, §4.2), written from the spec
 * with plain loops. Test-only. Tensors are NCHW Float64Arrays with explicit sizes.
 * `variant` switches in deliberately WRONG conventions so tests can show each pitfall is caught.
 */
import type { HarmonConfig } from '../../src/model/config.ts';
import type { WeightSource } from '../../src/onnx/weights/types.ts';

export interface VaeVariant {
  /** Wrong: pad 1 on every side before the stride-2 conv (instead of right/bottom only). */
  symmetricDownsamplePad?: boolean;
  /** Wrong: drop every attention block. */
  noAttention?: boolean;
  /** Override GroupNorm eps (the right one is config.vae.eps = 1e-6). */
  eps?: number;
  keyPrefix?: string;
}

interface T4 {
  d: Float64Array;
  n: number;
  c: number;
  h: number;
  w: number;
}

class Ref {
  constructor(
    private readonly cfg: HarmonConfig,
    private readonly weights: WeightSource,
    private readonly v: VaeVariant,
  ) {}

  private get(key: string): Float32Array {
    const e = this.weights.get((this.v.keyPrefix ?? '') + key);
    if (!e) throw new Error(`reference: missing weight ${key}`);
    return e.read();
  }

  /** Conv2d with zero padding [top, left, bottom, right] and a square kernel. */
  conv(x: T4, key: string, cout: number, k: number, stride = 1, pads?: [number, number, number, number]): T4 {
    const w = this.get(`${key}.weight`);
    const b = this.get(`${key}.bias`);
    if (w.length !== cout * x.c * k * k) throw new Error(`reference: ${key} has ${w.length} values`);
    const p = (k - 1) / 2;
    const [pt, pl, pb, pr] = pads ?? [p, p, p, p];
    const ho = Math.floor((x.h + pt + pb - k) / stride) + 1;
    const wo = Math.floor((x.w + pl + pr - k) / stride) + 1;
    const out = new Float64Array(x.n * cout * ho * wo);
    for (let n = 0; n < x.n; n++) {
      for (let o = 0; o < cout; o++) {
        const ob = (n * cout + o) * ho * wo;
        out.fill(b[o], ob, ob + ho * wo);
        for (let i = 0; i < x.c; i++) {
          const ib = (n * x.c + i) * x.h * x.w;
          for (let ky = 0; ky < k; ky++) {
            for (let kx = 0; kx < k; kx++) {
              const wv = w[((o * x.c + i) * k + ky) * k + kx];
              for (let oy = 0; oy < ho; oy++) {
                const iy = oy * stride + ky - pt;
                if (iy < 0 || iy >= x.h) continue;
                const orow = ob + oy * wo;
                const irow = ib + iy * x.w;
                for (let ox = 0; ox < wo; ox++) {
                  const ix = ox * stride + kx - pl;
                  if (ix >= 0 && ix < x.w) out[orow + ox] += wv * x.d[irow + ix];
                }
              }
            }
          }
        }
      }
    }
    return { d: out, n: x.n, c: cout, h: ho, w: wo };
  }

  /** GroupNorm(groups, eps, affine): biased variance over (C/G)·H·W per sample and group. */
  norm(x: T4, key: string): T4 {
    const G = this.cfg.vae.groups;
    const eps = this.v.eps ?? this.cfg.vae.eps;
    const gamma = this.get(`${key}.weight`);
    const beta = this.get(`${key}.bias`);
    const cpg = x.c / G;
    const hw = x.h * x.w;
    const out = new Float64Array(x.d.length);
    for (let n = 0; n < x.n; n++) {
      for (let gi = 0; gi < G; gi++) {
        const start = (n * x.c + gi * cpg) * hw;
        const len = cpg * hw;
        let mean = 0;
        for (let i = 0; i < len; i++) mean += x.d[start + i];
        mean /= len;
        let varc = 0;
        for (let i = 0; i < len; i++) varc += (x.d[start + i] - mean) ** 2;
        varc /= len;
        const inv = 1 / Math.sqrt(varc + eps);
        for (let i = 0; i < len; i++) {
          const c = gi * cpg + Math.floor(i / hw);
          out[start + i] = (x.d[start + i] - mean) * inv * gamma[c] + beta[c];
        }
      }
    }
    return { ...x, d: out };
  }

  swish(x: T4): T4 {
    return { ...x, d: x.d.map((v) => v / (1 + Math.exp(-v))) };
  }

  add(a: T4, b: T4): T4 {
    return { ...a, d: a.d.map((v, i) => v + b.d[i]) };
  }

  resnet(x: T4, key: string, cout: number): T4 {
    let h = this.conv(this.swish(this.norm(x, `${key}.norm1`)), `${key}.conv1`, cout, 3);
    h = this.conv(this.swish(this.norm(h, `${key}.norm2`)), `${key}.conv2`, cout, 3);
    const shortcut = x.c === cout ? x : this.conv(x, `${key}.nin_shortcut`, cout, 1);
    return this.add(shortcut, h);
  }

  attn(x: T4, key: string): T4 {
    if (this.v.noAttention) return x;
    const c = x.c;
    const hw = x.h * x.w;
    const nrm = this.norm(x, `${key}.norm`);
    const q = this.conv(nrm, `${key}.q`, c, 1);
    const k = this.conv(nrm, `${key}.k`, c, 1);
    const v = this.conv(nrm, `${key}.v`, c, 1);
    const hOut = new Float64Array(x.d.length);
    const row = new Float64Array(hw);
    for (let n = 0; n < x.n; n++) {
      const base = n * c * hw;
      for (let i = 0; i < hw; i++) {
        let max = -Infinity;
        for (let j = 0; j < hw; j++) {
          let s = 0;
          for (let ch = 0; ch < c; ch++) s += q.d[base + ch * hw + i] * k.d[base + ch * hw + j];
          row[j] = s / Math.sqrt(c);
          if (row[j] > max) max = row[j];
        }
        let sum = 0;
        for (let j = 0; j < hw; j++) {
          row[j] = Math.exp(row[j] - max);
          sum += row[j];
        }
        for (let ch = 0; ch < c; ch++) {
          let s = 0;
          for (let j = 0; j < hw; j++) s += v.d[base + ch * hw + j] * row[j];
          hOut[base + ch * hw + i] = s / sum;
        }
      }
    }
    return this.add(x, this.conv({ ...x, d: hOut }, `${key}.proj_out`, c, 1));
  }

  downsample(x: T4, key: string): T4 {
    const pads: [number, number, number, number] = this.v.symmetricDownsamplePad
      ? [1, 1, 1, 1]
      : [0, 0, 1, 1];
    return this.conv(x, `${key}.conv`, x.c, 3, 2, pads);
  }

  upsample(x: T4, key: string): T4 {
    const h = x.h * 2;
    const w = x.w * 2;
    const d = new Float64Array(x.n * x.c * h * w);
    for (let nc = 0; nc < x.n * x.c; nc++) {
      for (let y = 0; y < h; y++) {
        for (let xx = 0; xx < w; xx++)
          d[(nc * h + y) * w + xx] = x.d[(nc * x.h + (y >> 1)) * x.w + (xx >> 1)];
      }
    }
    return this.conv({ d, n: x.n, c: x.c, h, w }, `${key}.conv`, x.c, 3);
  }

  mid(x: T4, prefix: string): T4 {
    const h = this.resnet(x, `${prefix}.mid.block_1`, x.c);
    return this.resnet(this.attn(h, `${prefix}.mid.attn_1`), `${prefix}.mid.block_2`, x.c);
  }
}

/** pixels [B,3,H,W] in [-1,1] -> latents [B,H/16,W/16,embedDim] = posterior mean · scale. */
export function vaeEncode(
  config: HarmonConfig,
  weights: WeightSource,
  pixels: ArrayLike<number>,
  B: number,
  H: number,
  W: number,
  variant: VaeVariant = {},
): Float64Array {
  const vae = config.vae;
  const r = new Ref(config, weights, variant);
  const L = vae.chMult.length;
  let h = r.conv({ d: Float64Array.from(pixels), n: B, c: 3, h: H, w: W }, 'encoder.conv_in', vae.ch, 3);
  for (let i = 0; i < L; i++) {
    for (let j = 0; j < vae.numResBlocks; j++) {
      h = r.resnet(h, `encoder.down.${i}.block.${j}`, vae.ch * vae.chMult[i]);
      if (i === L - 1) h = r.attn(h, `encoder.down.${i}.attn.${j}`);
    }
    if (i < L - 1) h = r.downsample(h, `encoder.down.${i}.downsample`);
  }
  h = r.mid(h, 'encoder');
  h = r.conv(r.swish(r.norm(h, 'encoder.norm_out')), 'encoder.conv_out', 2 * vae.zChannels, 3);
  const moments = r.conv(h, 'quant_conv', 2 * vae.embedDim, 1);
  const { h: lh, w: lw } = moments;
  const out = new Float64Array(B * lh * lw * vae.embedDim);
  for (let n = 0; n < B; n++) {
    for (let c = 0; c < vae.embedDim; c++) {
      for (let p = 0; p < lh * lw; p++) {
        out[(n * lh * lw + p) * vae.embedDim + c] = moments.d[(n * moments.c + c) * lh * lw + p] * vae.scale;
      }
    }
  }
  return out;
}

/** latents [B,h,w,embedDim] (scaled tokens) -> pixels [B,3,16h,16w], unclamped. */
export function vaeDecode(
  config: HarmonConfig,
  weights: WeightSource,
  latents: ArrayLike<number>,
  B: number,
  h: number,
  w: number,
  variant: VaeVariant = {},
): Float64Array {
  const vae = config.vae;
  const r = new Ref(config, weights, variant);
  const L = vae.chMult.length;
  const e = vae.embedDim;
  const z = new Float64Array(B * e * h * w);
  for (let n = 0; n < B; n++) {
    for (let p = 0; p < h * w; p++) {
      for (let c = 0; c < e; c++) z[(n * e + c) * h * w + p] = latents[(n * h * w + p) * e + c] / vae.scale;
    }
  }
  let x = r.conv({ d: z, n: B, c: e, h, w }, 'post_quant_conv', vae.zChannels, 1);
  x = r.conv(x, 'decoder.conv_in', vae.ch * vae.chMult[L - 1], 3);
  x = r.mid(x, 'decoder');
  for (let i = L - 1; i >= 0; i--) {
    for (let j = 0; j <= vae.numResBlocks; j++)
      x = r.resnet(x, `decoder.up.${i}.block.${j}`, vae.ch * vae.chMult[i]);
    if (i > 0) x = r.upsample(x, `decoder.up.${i}.upsample`);
  }
  return r.conv(r.swish(r.norm(x, 'decoder.norm_out')), 'decoder.conv_out', 3, 3).d;
}

/** Spec §2.9: uint8 = floor(clamp(127.5x + 128, 0, 255)), here in float32 like the graph. */
export function toUint8(x: number): number {
  const v = Math.fround(Math.fround(Math.fround(127.5) * Math.fround(x)) + 128);
  return Math.floor(Math.min(255, Math.max(0, v)));
}
