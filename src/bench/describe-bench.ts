/**
 * describe (image → text) timing, in-process on HarmonModel (no worker thread, so the figures are
 * the pipeline's own, not the engine's message passing):
 *   - time to first token: call → first `token` event (decode image, VAE encode, prefill,
 *     first argmax);
 *   - prefill: the one `lm` run over the whole prompt, MAR-encoding the image into its slots;
 *   - decode: every later token (one `lm` run with KV cache); tokens/s = tokens decoded
 *     after the first / decode seconds. This is the figure reported as describe.tokensPerSecond.
 *
 * A random-weight model almost never emits a stop token, so runs produce maxTokens tokens; the
 * token count of each run is reported anyway, and runs that stop early still give valid rates.
 */
import { describe } from '../harmon/describe.ts';
import { HarmonModel } from '../harmon/harmon-model.ts';
import { encodeImage } from '../harmon/image-io.ts';
import { Rng } from '../harmon/prng.ts';
import { buildDescribePrompt } from '../harmon/prompts.ts';
import type { LoadStats } from '../runtime/sessions.ts';
import { resolveDescribeOptions } from '../shared/job-inputs.ts';
import { type Measurement, type MeasureOptions, measurementOf, summarize } from './harness.ts';
import type { DescribeFigures } from './report.ts';

export interface DescribeBenchOptions {
  modelDir: string;
  maxTokens?: number;
  /** Input image side in px (describe resizes it to `size`). */
  imageSide?: number;
  /** Model input size in px (default: describe's own default for the model). */
  size?: number;
  measure?: MeasureOptions;
  label?: string;
}

/** The report's describe figures plus the raw measurements behind them. */
export interface DescribeBenchResult extends DescribeFigures {
  measurements: Measurement[];
  load: LoadStats;
}

/** A deterministic noise picture, PNG-encoded, as a user upload would arrive. */
export async function benchImage(side: number, seed = 5): Promise<Uint8Array> {
  const u = Rng.fromSeed(seed)
    .fork('bench-image')
    .uniform(side * side * 3);
  const data = Uint8Array.from(u, (v) => Math.floor(v * 256));
  return new Uint8Array(await encodeImage({ width: side, height: side, data }, 'png'));
}

export async function runDescribeBench(opts: DescribeBenchOptions): Promise<DescribeBenchResult> {
  // Opened as a serving engine opens it. Hashes are checked as a worker would (hash markers make
  // that a stat after the first load), so the reported load time is the worker's.
  const model = await HarmonModel.open(opts.modelDir);
  try {
    const image = await benchImage(opts.imageSide ?? 96);
    const maxTokens = opts.maxTokens ?? 32;
    const input = { maxTokens, seed: 1, ...(opts.size ? { size: opts.size } : {}) };
    const resolved = resolveDescribeOptions(input, { maxImageSize: model.config.maxImageSize });
    const N = (resolved.size / 16) ** 2;
    const promptTokens = buildDescribePrompt(model.tokenizer, N + model.config.mar.buffer, resolved.prompt)
      .ids.length;
    const m = opts.measure ?? {};
    const warmup = m.warmup ?? 1;
    const reps = Math.max(1, m.reps ?? 3);
    const maxMs = m.maxMs ?? Number.POSITIVE_INFINITY;
    const ttft: number[] = [];
    const prefill: number[] = [];
    const perToken: number[] = [];
    const tps: number[] = [];
    const total: number[] = [];
    const tokens: number[] = [];
    const stages: Record<string, number[]> = {};
    let sessionRuns = 0;
    const once = async () => {
      const t0 = performance.now();
      let first = Number.NaN;
      const res = await describe(model, image, input, {
        onEvent: (e) => {
          if (e.type === 'token' && Number.isNaN(first)) first = performance.now() - t0;
        },
      });
      const decodeMs = res.meta.stageMs.decode ?? 0;
      const decoded = res.tokenCount - 1; // the first token comes from the prefill's logits
      return { res, first, decodeMs, decoded, totalMs: performance.now() - t0 };
    };
    const start = performance.now();
    for (let i = 0; i < warmup; i++) await once();
    while (ttft.length < reps && (ttft.length === 0 || performance.now() - start < maxMs)) {
      const r = await once();
      ttft.push(r.first);
      prefill.push(r.res.meta.stageMs.prefill ?? 0);
      total.push(r.totalMs);
      tokens.push(r.res.tokenCount);
      if (r.decoded > 0) {
        perToken.push(r.decodeMs / r.decoded);
        tps.push((1000 * r.decoded) / r.decodeMs);
      }
      sessionRuns = r.res.meta.sessions.runs;
      for (const [k, v] of Object.entries(r.res.meta.stageMs)) {
        stages[k] = [...(stages[k] ?? []), v];
      }
    }
    const label = opts.label ? `${opts.label} ` : '';
    const measurements = [
      measurementOf(`${label}describe time to first token`, ttft, 'ms', warmup),
      measurementOf(`${label}describe prefill (llm)`, prefill, 'ms', warmup),
      measurementOf(`${label}describe whole request`, total, 'ms', warmup),
    ];
    if (perToken.length) {
      measurements.push(measurementOf(`${label}describe decode per token`, perToken, 'ms', warmup));
      measurements.push(measurementOf(`${label}describe decode rate`, tps, 'tok/s', warmup));
    }
    const prefillMs = summarize(prefill).median;
    return {
      variant: model.manifest.variant,
      imageSize: resolved.size,
      promptTokens,
      tokensGenerated: summarize(tokens).median,
      timeToFirstTokenMs: summarize(ttft).median,
      prefillMs,
      prefillTokensPerSecond: prefillMs > 0 ? (1000 * promptTokens) / prefillMs : Number.NaN,
      decodeMsPerToken: perToken.length ? summarize(perToken).median : Number.NaN,
      tokensPerSecond: tps.length ? summarize(tps).median : Number.NaN,
      totalMs: summarize(total).median,
      sessionRunsPerRequest: sessionRuns,
      stageMs: Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, summarize(v).median])),
      measurements,
      load: model.runtime.loadStats,
    };
  } finally {
    await model.close();
  }
}
