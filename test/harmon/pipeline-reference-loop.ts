/**
 * The plain-TypeScript float64 whole generate loop of the pipeline reference test (Appendix A on
 * the independent module references in test/reference/: Qwen2, MAR, diffusion in the ORIGINAL
 * §3.7 formulation with a duplicated 2n-row state), driven by the same PRNG streams as
 * src/harmon/generate.ts. What is shared with src/ on purpose: the tokenizer/prompt builder, the
 * PRNG draws (orders, x_T, ξ) and the §2.10 table resampler, all tested on their own.
 * Used by pipeline-reference.test.ts (random weights, relative bound) and
 * pipeline-reference-conditioned.test.ts (well-conditioned diffusion weights, absolute bound).
 */
import { generationOrders, samplerNoise } from '../../src/harmon/generate.ts';
import { resizeGrid } from '../../src/harmon/pos-embed.ts';
import { Rng } from '../../src/harmon/prng.ts';
import { buildGeneratePrompt } from '../../src/harmon/prompts.ts';
import type { QwenTokenizer } from '../../src/harmon/tokenizer.ts';
import type { HarmonConfig } from '../../src/model/config.ts';
import type { WeightSource } from '../../src/onnx/weights/types.ts';
import { diffusionSampleReference } from '../reference/diffusion.ts';
import { marDecode, marEncode } from '../reference/mar.ts';
import { qwen2Forward } from '../reference/qwen2.ts';

export interface RefRun {
  prompt: string;
  seed: number;
  steps: number;
  size: number;
  count: number;
  cfg: number;
  cfgSchedule: 'constant' | 'linear';
  temperature: number;
}

/**
 * The runs both pipeline reference tests compare: CFG with the linear schedule over two images,
 * and the no-CFG path (cfg 1, a single row per image). The first one is also the pitfall run.
 */
export const REFERENCE_RUNS = [
  {
    prompt: 'a lighthouse at dusk',
    seed: 11,
    steps: 6,
    size: 64,
    count: 2,
    cfg: 3,
    cfgSchedule: 'linear',
    temperature: 0.9,
  },
  {
    prompt: 'two cats',
    seed: 5,
    steps: 4,
    size: 64,
    count: 1,
    cfg: 1,
    cfgSchedule: 'constant',
    temperature: 1,
  },
] satisfies RefRun[];

/**
 * Latents [count][N·16] of the reference loop. `positionsFromL` is pitfall §5.1 item 1 (image
 * positions at L for every row), to show a comparison can fail.
 */
export function referenceGenerate(
  cfg: HarmonConfig,
  w: WeightSource,
  tokenizer: QwenTokenizer,
  r: RefRun,
  positionsFromL = false,
): Float64Array[] {
  const { llm, mar } = cfg;
  const H = llm.hidden;
  const D = mar.width;
  const side = r.size / 16;
  const N = side * side;
  const G = r.count;
  const S = cfg.diffusion.samplingSteps;
  const withCfg = r.cfg !== 1;
  const batch = buildGeneratePrompt(tokenizer, { prompt: r.prompt, cfg: r.cfg, count: G });
  const B = batch.batch;
  const L = batch.maxLength;
  // 1–2: embed + prefill (all-ones mask, positions 0..L−1).
  const E = w.get('llm.model.embed_tokens.weight')!.read();
  const embeds = new Float64Array(B * L * H);
  for (let t = 0; t < B * L; t++) for (let c = 0; c < H; c++) embeds[t * H + c] = E[batch.ids[t] * H + c];
  const pre = qwen2Forward(
    cfg,
    w,
    {
      batch: B,
      seq: L,
      embeds,
      mask: new Array(B * L).fill(1),
      positions: Array.from({ length: B * L }, (_, i) => i % L),
    },
    { logits: false },
  );
  // §2.10 tables straight from the checkpoint tensors.
  const grid = (key: string, skip: number) =>
    resizeGrid(
      w
        .get(key)!
        .read()
        .slice(skip * D, (skip + 256) * D),
      16,
      16,
      D,
      side,
      side,
    );
  const encGrid = grid('mar.encoder_pos_embed_learned', 64);
  const decGrid = grid('mar.decoder_pos_embed_learned', 64);
  const diffGrid = grid('mar.diffusion_pos_embed_learned', 0);
  // 3: orders from the same PRNG.
  const rng = Rng.fromSeed(r.seed);
  const orders = generationOrders(rng, G, N);
  const tok = Array.from({ length: G }, () => new Float64Array(N * 16));
  let mcnt = N;
  for (let k = 0; k < r.steps; k++) {
    const last = k === r.steps - 1;
    const mnext = Math.max(
      1,
      Math.min(mcnt - 1, Math.floor(N * Math.cos((Math.PI / 2) * ((k + 1) / r.steps)))),
    );
    const asc = (a: number[]) => [...a].sort((x, y) => x - y);
    const vis = orders.map((o) => asc(Array.from(o.slice(mcnt))));
    const pred = orders.map((o) => asc(Array.from(o.slice(last ? 0 : mnext, mcnt))));
    const V = N - mcnt;
    const K = pred[0].length;
    const rowImg = (b: number) => b % G;
    const visRows = Array.from({ length: B }, (_, b) => vis[rowImg(b)]);
    const predRows = Array.from({ length: B }, (_, b) => pred[rowImg(b)]);
    const tokens = new Float64Array(B * V * 16);
    visRows.forEach((idx, b) => {
      idx.forEach((p, j) => {
        tokens.set(tok[rowImg(b)].subarray(p * 16, p * 16 + 16), (b * V + j) * 16);
      });
    });
    const enc = marEncode(cfg, w, { tokens, visibleIdx: visRows, encPosGrid: encGrid });
    const s = V + 64;
    const mask: number[] = [];
    const positions: number[] = [];
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < L; j++) mask.push(batch.textMask[b * L + j]);
      for (let j = 0; j < s; j++) {
        mask.push(1);
        positions.push((positionsFromL ? L : batch.lengths[b]) + j);
      }
    }
    const h = qwen2Forward(
      cfg,
      w,
      { batch: B, seq: s, embeds: enc.llmIn, mask, positions, past: pre.present, pastLength: L },
      { logits: false },
    );
    const z = marDecode(cfg, w, {
      xEnc: enc.xEnc,
      llmOut: h.hidden,
      visibleIdx: visRows,
      predIdx: predRows,
      decPosGrid: decGrid,
      diffPosGrid: diffGrid,
    });
    const scale = r.cfgSchedule === 'linear' ? 1 + ((r.cfg - 1) * (N - mnext)) / N : r.cfg;
    const drawn = samplerNoise(
      rng,
      k,
      pred.map((p) => Int32Array.from(p)),
      S,
    );
    const n = G * K;
    const rows = withCfg ? 2 * n : n;
    // Original formulation: the unconditional half gets its own (different) ξ, which must not matter.
    const noise = new Float64Array(S * rows * 16);
    const other = Rng.fromSeed(999).normal(S * n * 16);
    for (let i = 0; i < S; i++) {
      noise.set(drawn.noise.subarray(i * n * 16, (i + 1) * n * 16), i * rows * 16);
      if (withCfg) noise.set(other.subarray(i * n * 16, (i + 1) * n * 16), (i * rows + n) * 16);
    }
    const x = diffusionSampleReference(cfg, w, {
      n,
      c: z.subarray(0, rows * D),
      xT: drawn.xT,
      noise,
      cfg: withCfg,
      cfgScale: scale,
      temperature: r.temperature,
    });
    pred.forEach((idx, g) => {
      idx.forEach((p, j) => {
        tok[g].set(x.subarray((g * K + j) * 16, (g * K + j + 1) * 16), p * 16);
      });
    });
    mcnt = mnext;
  }
  return tok;
}

/** Largest |reference − ONNX| and largest |reference| over all images. */
export function compareLatents(ref: Float64Array[], ours: Float32Array[]): { worst: number; mag: number } {
  let worst = 0;
  let mag = 0;
  ref.forEach((r, g) => {
    r.forEach((v, i) => {
      worst = Math.max(worst, Math.abs(v - ours[g][i]));
      mag = Math.max(mag, Math.abs(v));
    });
  });
  return { worst, mag };
}
