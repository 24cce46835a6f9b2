/**
 * Several generate requests ("jobs") in one MAR loop (issue #14): each job's own state and
 * randomness, and the row layout that puts them side by side.
 *
 * Rows (§2.3 generalised): the conditional row of every image of every job, job after job, then
 * the unconditional twins of the guided jobs' images in the same order. A solo request is the
 * layout of §2.3 exactly. Because the conditional rows come first, z flattened is already the
 * sampler's [conditional ‖ unconditional] condition rows; `samplerFeeds` pairs each state row with
 * its twin (or none, cfg = 1) and gives it its job's scale and temperature.
 *
 * Independence: every job has its own Rng from its own seed, and forks are named by the job-local
 * image index (`order`/g, `x_T`/g/k, `noise`/g/k), so a job draws the same numbers in any batch.
 * Every graph is row-independent and pads are masked, so companions reach a row's numbers only
 * through its padding: a longer masked key range regroups the attention sums (~1e-6 relative,
 * docs/performance.md "Cross-job batching").
 */
import { AppError } from '../shared/errors.ts';
import {
  type GenerateInput,
  type ResolvedGenerateOptions,
  resolveGenerateOptions,
} from '../shared/job-inputs.ts';
import { type JobShare, newShare } from './batch-meter.ts';
import type { CancelSignal, EventSink, GenerateResult, PipelineEvent, StepDebugInfo } from './events.ts';
import { type HarmonModel, throwIfCanceled } from './harmon-model.ts';
import { samplerRowsFor } from './mar-batch.ts';
import { cfgScales, maskSchedule } from './mask-schedule.ts';
import { Rng } from './prng.ts';
import { buildGeneratePrompt, padRows } from './prompts.ts';

export const C = 16; // latent channels per token

export interface GenerateRunOptions {
  onEvent?: EventSink;
  signal?: CancelSignal;
  /** Emit a preview image every N MAR steps (0 or absent: never). */
  previewEvery?: number;
  /** Instrumentation for the step-level tests. */
  onStepDebug?: (info: StepDebugInfo) => void;
  /** Return the final latents per image (reference tests). */
  returnLatents?: boolean;
}

export interface BatchJob {
  /** Position in the caller's list. */
  index: number;
  o: ResolvedGenerateOptions;
  run: GenerateRunOptions;
  rng: Rng;
  /** Per image g: the token state [N, C], zeros = unknown (views into one [G, N, C] array). */
  images: Float32Array[];
  orders: Int32Array[];
  /** Guidance scale per step (§2.8). */
  scales: number[];
  /** Prompt ids (after tokenize): the conditional row, and the unconditional one with CFG. */
  prompt?: { cond: number[]; uncond: number[] | null };
  share: JobShare;
  /** Set once the job has left the batch: finished, canceled or failed. */
  outcome?: PromiseSettledResult<GenerateResult>;
}

/** Resolves a request against the model (coded BAD_USER_INPUT errors are the job's own). */
export function planJob(
  model: HarmonModel,
  index: number,
  input: GenerateInput,
  run: GenerateRunOptions,
): BatchJob {
  const o = resolveGenerateOptions(input, { maxImageSize: model.config.maxImageSize });
  const n = (o.size / 16) ** 2;
  const scales = cfgScales(o.cfgSchedule, o.cfg, maskSchedule(n, o.steps));
  const rng = Rng.fromSeed(o.seed);
  const state = new Float32Array(o.count * n * C);
  return {
    index,
    o,
    run,
    rng,
    images: Array.from({ length: o.count }, (_, g) => state.subarray(g * n * C, (g + 1) * n * C)),
    orders: generationOrders(rng, o.count, n),
    scales,
    share: newShare(),
  };
}

export function tokenizeJob(model: HarmonModel, job: BatchJob): void {
  const { prompt, cfgPrompt, cfg, count } = job.o;
  const b = buildGeneratePrompt(model.tokenizer, { prompt, cfgPrompt, cfg, count });
  job.prompt = { cond: b.rows[0], uncond: cfg !== 1 ? b.rows[count] : null };
}

export const guided = (job: BatchJob) => job.o.cfg !== 1;
export const jobRows = (job: BatchJob) => job.o.count * (guided(job) ? 2 : 1);

/** Sends an event to the job's own sink; a sink that throws fails that job alone. */
export function emitTo(job: BatchJob, event: PipelineEvent): void {
  if (job.outcome) return;
  try {
    job.run.onEvent?.(event);
  } catch (e) {
    job.outcome = { status: 'rejected', reason: e };
  }
}

export function failJob(job: BatchJob, reason: unknown): void {
  job.outcome ??= { status: 'rejected', reason };
}

/** Rejects the job if its signal is aborted, with the coded error a solo request gives. */
export function checkCanceled(job: BatchJob): void {
  try {
    throwIfCanceled(job.run.signal, 'generation');
  } catch (e) {
    failJob(job, e);
  }
}

/** One image of the batch: its job, job-local index g and token state. */
export interface BatchImage {
  job: BatchJob;
  g: number;
  tokens: Float32Array;
  order: Int32Array;
}

export interface BatchRow {
  job: BatchJob;
  /** Index into the layout's images. */
  image: number;
  uncond: boolean;
}

export interface Layout {
  images: BatchImage[];
  rows: BatchRow[];
}

/** The rows of the jobs still in the batch (see the header). */
export function layoutRows(jobs: BatchJob[]): Layout {
  const images: BatchImage[] = [];
  const first = new Map<BatchJob, number>();
  for (const job of jobs) {
    first.set(job, images.length);
    job.images.forEach((tokens, g) => {
      images.push({ job, g, tokens, order: job.orders[g] });
    });
  }
  const rows: BatchRow[] = images.map((im, i) => ({ job: im.job, image: i, uncond: false }));
  for (const job of jobs.filter(guided))
    for (let g = 0; g < job.o.count; g++) rows.push({ job, image: (first.get(job) ?? 0) + g, uncond: true });
  return { images, rows };
}

/** Right-padded prompt ids of the layout's rows (pads are masked in every later call, §2.4). */
export function layoutPrompt(rows: BatchRow[]) {
  return padRows(
    rows.map((r) => {
      const p = r.job.prompt;
      if (!p) throw new AppError('INTERNAL', 'a batch row has no prompt ids');
      return (r.uncond ? p.uncond : p.cond) ?? p.cond;
    }),
  );
}

export function generationOrders(rng: Rng, images: number, n: number): Int32Array[] {
  return Array.from({ length: images }, (_, g) => rng.fork('order', g).permutation(n));
}

/** x_T [n,16] and ξ [S,n,16] for one step; each image's rows come from its own job's forks. */
export function drawNoise(
  images: Array<{ rng: Rng; g: number; predicted: Int32Array }>,
  step: number,
  samplingSteps: number,
) {
  const n = images.reduce((a, p) => a + p.predicted.length, 0);
  const xT = new Float32Array(n * C);
  const noise = new Float32Array(samplingSteps * n * C); // [S, n, 16]
  let off = 0;
  for (const { rng, g, predicted } of images) {
    const k = predicted.length;
    xT.set(rng.fork('x_T', g, step).normal(k * C), off * C);
    const xi = rng.fork('noise', g, step).normal(samplingSteps * k * C); // [S, K, 16]
    for (let i = 0; i < samplingSteps; i++)
      noise.set(xi.subarray(i * k * C, (i + 1) * k * C), (i * n + off) * C);
    off += k;
  }
  return { n, xT, noise };
}

/** One request's x_T and ξ (every image of it from `rng`): the reference test's entry. */
export function samplerNoise(rng: Rng, step: number, predicted: Int32Array[], samplingSteps: number) {
  return drawNoise(
    predicted.map((p, g) => ({ rng, g, predicted: p })),
    step,
    samplingSteps,
  );
}

/**
 * diffusion_sampler's per-row inputs for step k: state rows image-major (K per image), each with
 * its job's scale and temperature; guided images pair with their twin's condition rows.
 */
export function samplerFeeds(layout: Layout, predicted: Int32Array[], k: number, samplingSteps: number) {
  const K = predicted[0].length;
  const { images, rows } = layout;
  const n = images.length * K;
  const twin = new Int32Array(n).fill(-1);
  rows.slice(images.length).forEach((r, u) => {
    for (let j = 0; j < K; j++) twin[r.image * K + j] = u * K + j;
  });
  const cfgScale = new Float32Array(n);
  const temperature = new Float32Array(n);
  images.forEach((im, i) => {
    cfgScale.fill(im.job.scales[k], i * K, (i + 1) * K);
    temperature.fill(im.job.o.temperature, i * K, (i + 1) * K);
  });
  const noise = drawNoise(
    images.map((im, i) => ({ rng: im.job.rng, g: im.g, predicted: predicted[i] })),
    k,
    samplingSteps,
  );
  return { ...samplerRowsFor(twin), cfgScale, temperature, ...noise };
}
