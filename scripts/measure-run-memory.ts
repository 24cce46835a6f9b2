/**
 * Opt-in check of the activation model in infra/lib/activations.ts (not part of npm test: it
 * allocates gigabytes). Runs ONE session run on the CPU provider in this process and prints the
 * peak RSS the run added (VmHWM after the run, reset just before it through /proc/self/clear_refs,
 * minus VmRSS before it) next to what the model predicts for the same shapes with the CPU
 * kernel's one score copy (CPU_KERNELS). Use a fresh process per case (the .sh does).
 *
 *   node --import tsx scripts/measure-run-memory.ts vae_decoder|vae_encoder <images> [size]
 *   node --import tsx scripts/measure-run-memory.ts lm <rows> [size]
 *
 * vae_decoder / vae_encoder: the real KL-16 VAE (the same in 0.5B and 1.5B; tiny and small use
 * a narrower one), random weights. lm: the `small` config's lm graph as generate's image pass at `size`
 * (V = N − 64 visible tokens, K = 64 predicted, a 512-token prompt in the cache). Env:
 * MEASURE_NO_ARENA=1 turns the CPU arena off; MEASURE_STEPS=n makes n runs growing to the measured
 * one (lm: visible tokens, VAE: image size) and reports the peak over all of them.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import {
  CPU_KERNELS,
  lmRunBytes,
  PROMPT_TOKENS,
  vaeDecoderRunBytes,
  vaeEncoderRunBytes,
} from '../infra/lib/activations.ts';
import { HARMON_0_5B, HARMON_SMALL, type HarmonConfig } from '../src/model/config.ts';
import { IMAGE_TOKEN_ID } from '../src/model/tokens.ts';
import { buildLm } from '../src/onnx/builders/lm.ts';
import { buildModelGraph } from '../src/onnx/export-model.ts';
import { toModelBytes } from '../src/onnx/graph/serialize.ts';
import { randomHarmonWeights } from '../src/onnx/weights/random.ts';

const MIB = 2 ** 20;
const GRAPHS = ['vae_decoder', 'vae_encoder', 'lm'] as const;

function status(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/self/status`);
  return Number(m[1]) * 1024;
}

/** Deterministic values in [-scale, scale) (content does not matter for memory, only shapes). */
function filled(n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (((i * 2654435761) >>> 0) / 2 ** 32 - 0.5) * 2 * scale;
  return out;
}

const i64 = (dims: number[], values: (i: number) => number) =>
  new ort.Tensor(
    'int64',
    BigInt64Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => BigInt(values(i))),
    dims,
  );

function lmCase(c: HarmonConfig, rows: number, size: number, visible?: number) {
  const n = (size / 16) ** 2;
  const k = c.mar.buffer;
  const v = visible ?? n - k;
  const s = v + c.mar.buffer;
  const p = PROMPT_TOKENS;
  const { kvHeads, headDim, layers } = c.llm;
  const d = c.mar.width;
  const feeds: Record<string, ort.Tensor> = {
    input_ids: i64([rows, s], () => IMAGE_TOKEN_ID),
    attention_mask: i64([rows, p + s], () => 1),
    position_ids: i64([rows, s], (i) => p + (i % s)),
    tokens: new ort.Tensor('float32', filled(rows * v * 16), [rows, v, 16]),
    visible_idx: i64([rows, v], (i) => i % v),
    pred_idx: i64([rows, k], (i) => v + (i % k)),
    enc_pos_grid: new ort.Tensor('float32', filled(n * d, 0.02), [n, d]),
    dec_pos_grid: new ort.Tensor('float32', filled(n * d, 0.02), [n, d]),
    diff_pos_grid: new ort.Tensor('float32', filled(n * d, 0.02), [n, d]),
    logits_at: i64([0, 2], () => 0),
  };
  for (let l = 0; l < layers; l++)
    for (const kv of ['key', 'value'])
      feeds[`past_key_values.${l}.${kv}`] = new ort.Tensor(
        'float32',
        filled(rows * kvHeads * p * headDim, 0.5),
        [rows, kvHeads, p, headDim],
      );
  const predicted = lmRunBytes(c, { rows, seq: s, past: p, mar: true }, CPU_KERNELS);
  return { feeds, predicted, shape: `rows ${rows}, S ${s} (V ${v} + 64), prompt ${p}, K ${k}` };
}

function vaeFeeds(graph: string, count: number, size: number): Record<string, ort.Tensor> {
  const h = size / 16;
  return graph === 'vae_decoder'
    ? { latents: new ort.Tensor('float32', filled(count * h * h * 16), [count, h, h, 16]) }
    : { pixel_values: new ort.Tensor('float32', filled(count * 3 * size * size), [count, 3, size, size]) };
}

async function main() {
  const [graph, countArg, sizeArg] = process.argv.slice(2);
  const count = Number(countArg);
  const size = Number(sizeArg ?? 1024);
  if (!GRAPHS.includes(graph as (typeof GRAPHS)[number]) || !(count >= 1) || size % 16 !== 0)
    throw new Error(`usage: measure-run-memory.ts ${GRAPHS.join('|')} <images|rows> [size]`);
  const vae = graph !== 'lm';
  const config: HarmonConfig = vae
    ? { ...HARMON_SMALL, vae: HARMON_0_5B.vae, maxImageSize: size }
    : { ...HARMON_SMALL, maxImageSize: size };
  const weights = randomHarmonWeights(config, 1, { includeVae: vae, vaePrefix: 'vae.' });
  // MEASURE_WHOLE_ATTENTION=1: the lm without query chunks (LLM_ATTENTION_CHUNKING), to compare.
  let bytes: Uint8Array | undefined = toModelBytes(
    graph === 'lm'
      ? buildLm(config, weights, {
          weightDType: 'float32',
          imageTokenId: IMAGE_TOKEN_ID,
          attentionChunking: process.env.MEASURE_WHOLE_ATTENTION === '1' ? null : undefined,
        })
      : buildModelGraph(graph as (typeof GRAPHS)[number], config, weights, {
          weightDType: 'float32',
          vaePrefix: 'vae.',
          imageTokenId: IMAGE_TOKEN_ID,
        }),
  );
  // MEASURE_NO_ARENA=1: plain malloc/free instead of the BFC arena, so the peak is the live
  // tensors only (the arena keeps every region it grew, and a freed region cannot serve a
  // larger request: the difference between the two runs is what the arena retains).
  const arena = process.env.MEASURE_NO_ARENA !== '1';
  const session = await ort.InferenceSession.create(bytes, {
    graphOptimizationLevel: 'all',
    enableCpuMemArena: arena,
  });
  bytes = undefined;
  const c =
    graph === 'lm'
      ? lmCase(config, count, size)
      : {
          feeds: vaeFeeds(graph, count, size),
          predicted:
            graph === 'vae_decoder'
              ? vaeDecoderRunBytes(config, count, size)
              : count * vaeEncoderRunBytes(config, size),
          shape: `${count} image(s) ${size}²`,
        };
  (globalThis as { gc?: () => void }).gc?.();
  const before = status('VmRSS');
  writeFileSync('/proc/self/clear_refs', '5'); // reset VmHWM to the current RSS
  const t0 = performance.now();
  // MEASURE_STEPS=n: first n − 1 smaller runs growing towards the measured one, so the peak
  // includes what the arena kept from them: lm image passes whose visible count grows (a job's
  // MAR steps), VAE runs at growing sizes (jobs of different sizes).
  const steps = Number(process.env.MEASURE_STEPS ?? 1);
  const full = (size / 16) ** 2 - config.mar.buffer;
  for (let j = 1; j < steps; j++)
    await session.run(
      graph === 'lm'
        ? lmCase(config, count, size, Math.floor((full * j) / steps)).feeds
        : vaeFeeds(graph, count, Math.max(16, Math.floor((size * j) / steps / 16) * 16)),
    );
  const out = await session.run(c.feeds);
  const ms = performance.now() - t0;
  const peak = status('VmHWM');
  const added = peak - before;
  console.log(
    JSON.stringify({
      graph,
      shape: c.shape,
      arena,
      steps,
      rssBeforeMiB: Math.round(before / MIB),
      peakMiB: Math.round(peak / MIB),
      runAddedMiB: Math.round(added / MIB),
      predictedMiB: Math.round(c.predicted / MIB),
      ratio: Number((added / c.predicted).toFixed(2)),
      runMs: Math.round(ms),
      outputs: Object.fromEntries(Object.entries(out).map(([k, t]) => [k, t.dims])),
      loadavg: readFileSync('/proc/loadavg', 'utf8').trim(),
    }),
  );
  await session.release();
}

await main();
