/**
 * Text → image (spec §2, §3.8, §6.11, Appendix A) for a batch of requests ("jobs") that share one
 * MAR loop (issue #14); a solo request is a batch of one, so there is one code path. Rows, seeds
 * and per-job parameters: batch-plan.ts; the lm passes: lm-passes.ts; run sizes: run-chunks.ts.
 *
 *   prompts ─tokenize─► ids [B,L] ─lm prefill (row chunks)─► text KV cache (kept, never grown)
 *   for k = 0..T−1:   drop the rows of jobs that were canceled or failed since the last step
 *     tokens[:, visible] ─ lm image pass (row chunks) ─► z [B,K,D]  (conditional rows first)
 *     z ─diffusion_sampler (per-row cfg scale, temperature, twin or none)─► x_0 ─► write back
 *   per job, per image: tokens [1,h,w,16] ─vae_decoder─► rgb [1,16h,16w,3] ─► PNG
 *
 * Session runs: prefill chunks + T × (image-pass chunks + 1) + one vae_decoder per image; with no
 * chunking (a single request below the largest size, or a batch within the budget) 2T + 1 + ΣG.
 *
 * Each job's signal is checked at every step: a canceled job rejects with CANCELED and its rows
 * leave the batch at that step; a job's own failure (its event sink, its decode) rejects it alone;
 * a failed shared run rejects every job still in the batch. Events go to each job's own sink.
 */

import { rowTokenBudget, VAE_IMAGES_PER_RUN } from '../model/run-budget.ts';
import type { HostTensor } from '../runtime/tensors.ts';
import { AppError } from '../shared/errors.ts';
import type { GenerateInput } from '../shared/job-inputs.ts';
import { BatchMeter, type JobShare } from './batch-meter.ts';
import {
  type BatchJob,
  C,
  checkCanceled,
  emitTo,
  failJob,
  type GenerateRunOptions,
  guided,
  jobRows,
  type Layout,
  layoutRows,
  planJob,
  samplerFeeds,
  tokenizeJob,
} from './batch-plan.ts';
import type { EncodedImage, GenerateResult } from './events.ts';
import type { HarmonModel } from './harmon-model.ts';
import { outF32 } from './harmon-model.ts';
import { encodeImage } from './image-io.ts';
import { imagePass, keepLiveRows, prefill, type TextState } from './lm-passes.ts';
import { type StepIndices, stepIndices, writeBack } from './mar-batch.ts';
import { maskSchedule } from './mask-schedule.ts';

export type { GenerateRunOptions } from './batch-plan.ts';
export { generationOrders, samplerNoise } from './batch-plan.ts';

export interface BatchOptions {
  /** Token-rows per session run (run-chunks.ts); default: the model's. Tests force chunking. */
  rowTokenBudget?: number;
}

export interface BatchRequest {
  input: GenerateInput;
  run?: GenerateRunOptions;
}

export async function generate(
  model: HarmonModel,
  input: GenerateInput,
  run: GenerateRunOptions & BatchOptions = {},
): Promise<GenerateResult> {
  const [r] = await generateBatch(model, [{ input, run }], run);
  if (r.status === 'rejected') throw r.reason;
  return r.value;
}

/**
 * Runs the requests as one MAR loop per (size, steps) — the engine's batch key makes that one —
 * and settles each on its own, in request order. A request that does not resolve rejects alone.
 */
export async function generateBatch(
  model: HarmonModel,
  requests: BatchRequest[],
  opts: BatchOptions = {},
): Promise<PromiseSettledResult<GenerateResult>[]> {
  const out: PromiseSettledResult<GenerateResult>[] = new Array(requests.length);
  const groups = new Map<string, BatchJob[]>();
  requests.forEach((r, i) => {
    try {
      const job = planJob(model, i, r.input, r.run ?? {});
      const key = `${job.o.size}/${job.o.steps}`;
      groups.set(key, [...(groups.get(key) ?? []), job]);
    } catch (e) {
      out[i] = { status: 'rejected', reason: e };
    }
  });
  for (const jobs of groups.values()) {
    await runBatch(model, jobs, opts.rowTokenBudget ?? rowTokenBudget(model.config));
    for (const j of jobs)
      out[j.index] = j.outcome ?? {
        status: 'rejected',
        reason: new AppError('INTERNAL', 'the generate batch ended without settling a job'),
      };
  }
  return out;
}

const shares = (jobs: BatchJob[]): Array<[JobShare, number]> => jobs.map((j) => [j.share, jobRows(j)]);

async function runBatch(model: HarmonModel, jobs: BatchJob[], budget: number): Promise<void> {
  const live = () => jobs.filter((j) => !j.outcome);
  const stage = (s: 'tokenize' | 'prefill' | 'mar') => {
    for (const j of live()) emitTo(j, { type: 'stage', stage: s });
  };
  const { size, steps } = jobs[0].o;
  const side = size / 16;
  const N = side * side;
  const schedule = maskSchedule(N, steps);
  const meter = new BatchMeter(model, {
    jobs: jobs.length,
    totalRows: jobs.reduce((a, j) => a + jobRows(j), 0),
  });
  try {
    stage('tokenize');
    await meter.time('tokenize', shares(live()), () => {
      for (const j of live()) {
        try {
          tokenizeJob(model, j);
        } catch (e) {
          failJob(j, e);
        }
      }
    });
    for (const j of live()) checkCanceled(j);
    if (live().length === 0) return;
    stage('prefill');
    let layout = layoutRows(live());
    let text = await meter.time('prefill', shares(live()), () => prefill(model, layout.rows, budget));
    stage('mar');
    for (let k = 0; k < steps; k++) {
      for (const j of live()) checkCanceled(j);
      if (live().length === 0) return;
      if (text.rows.some((r) => r.job.outcome)) {
        text = keepLiveRows(text);
        layout = layoutRows(live());
      }
      const before = schedule.maskedBefore[k];
      const idx = stepIndices(
        layout.images.map((im) => im.order),
        N,
        before,
        schedule.maskedAfter[k],
        k === steps - 1,
      );
      const pass = await meter.time('mar_step', shares(live()), () =>
        imagePass(model, text, layout, idx, side, budget),
      );
      await meter.time('diffusion_sampler', shares(live()), () => sample(model, layout, idx, pass.z, k));
      for (const j of live()) await afterStep(model, meter, j, { k, steps, side, layout, idx, text, pass });
    }
  } catch (e) {
    for (const j of live()) failJob(j, e); // a shared run failed: no job of the batch can go on
    return;
  }
  for (const j of live()) await finishJob(model, meter, j, side);
}

/** diffusion_sampler over every image's K new tokens, written back into each job's state. */
async function sample(model: HarmonModel, layout: Layout, idx: StepIndices, z: HostTensor, k: number) {
  const { diffusion, mar } = model.config;
  const S = diffusion.samplingSteps;
  const f = samplerFeeds(layout, idx.predicted, k, S);
  const out = await model.runtime.run('diffusion_sampler', {
    c: { dtype: 'float32', dims: [z.data.length / mar.width, mar.width], data: z.data },
    x_T: { dtype: 'float32', dims: [f.n, C], data: f.xT },
    noise: { dtype: 'float32', dims: [S, f.n, C], data: f.noise },
    row_state: { dtype: 'int64', dims: [f.rowState.length], data: f.rowState },
    uncond_row: { dtype: 'int64', dims: [f.n], data: f.uncondRow },
    cfg_scale: { dtype: 'float32', dims: [f.n], data: f.cfgScale },
    temperature: { dtype: 'float32', dims: [f.n], data: f.temperature },
  });
  // Only the conditional state exists (§3.8); the twins read the same token state.
  writeBack(
    layout.images.map((im) => im.tokens),
    idx.predicted,
    outF32(out, 'x_0', 'diffusion_sampler').data,
    C,
  );
}

interface StepDone {
  k: number;
  steps: number;
  side: number;
  layout: Layout;
  idx: StepIndices;
  text: TextState;
  pass: { positions: BigInt64Array; S: number };
}

/** The job's view of the step: debug facts as if it ran alone, its step event, its preview. */
async function afterStep(model: HarmonModel, meter: BatchMeter, job: BatchJob, d: StepDone): Promise<void> {
  const rows = d.layout.rows.flatMap((r, b) => (r.job === job ? [b] : []));
  const K = d.idx.predicted[0].length;
  job.run.onStepDebug?.({
    step: d.k,
    batchRows: rows.length,
    visible: d.idx.visible[0].length,
    predIdx: rows.map((b) => Array.from(d.idx.predicted[d.layout.rows[b].image])),
    positionIds: rows.map((b) =>
      Array.from(d.pass.positions.subarray(b * d.pass.S, (b + 1) * d.pass.S), Number),
    ),
    textCacheLength: d.text.L,
    cfgScale: job.scales[d.k],
    guided: guided(job),
    conditionRows: rows.length * K,
  });
  emitTo(job, { type: 'step', step: d.k + 1, totalSteps: d.steps, predicted: K, at: Date.now() });
  const every = job.run.previewEvery ?? 0;
  if (every > 0 && (d.k + 1) % every === 0 && d.k + 1 < d.steps && !job.outcome) {
    try {
      const images = await meter.time('preview', [[job.share, 1]], () => decodePngs(model, job, d.side));
      emitTo(job, { type: 'preview', step: d.k + 1, totalSteps: d.steps, images });
    } catch (e) {
      failJob(job, e);
    }
  }
}

async function finishJob(model: HarmonModel, meter: BatchMeter, job: BatchJob, side: number): Promise<void> {
  checkCanceled(job);
  if (job.outcome) return;
  try {
    emitTo(job, { type: 'stage', stage: 'vae_decode' });
    const rgb = await meter.time('vae_decode', [[job.share, 1]], () => vaeDecode(model, job.images, side));
    emitTo(job, { type: 'stage', stage: 'encode' });
    const images = await meter.time('encode_png', [[job.share, 1]], () => encodePngs(rgb, side * 16));
    if (job.outcome) return; // its event sink failed
    const { seed, steps, size } = job.o;
    const meta = meter.finish(job.share, jobRows(job));
    const latents = job.run.returnLatents ? { latents: job.images.map((t) => t.slice()) } : {};
    job.outcome = { status: 'fulfilled', value: { images, seed, steps, size, meta, ...latents } };
  } catch (e) {
    failJob(job, e);
  }
}

/**
 * Each image's tokens [N,16] viewed as [1,h,w,16] (raster order) → uint8 RGB [16h,16w,3] (§2.9,
 * in-graph), VAE_IMAGES_PER_RUN images per run (src/model/run-budget.ts): the decoder's
 * activations grow with its batch.
 */
async function vaeDecode(model: HarmonModel, images: Float32Array[], side: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let i = 0; i < images.length; i += VAE_IMAGES_PER_RUN) {
    const group = images.slice(i, i + VAE_IMAGES_PER_RUN);
    const latents = group.length === 1 ? group[0] : concatFloat32(group);
    const r = await model.runtime.run(
      'vae_decoder',
      { latents: { dtype: 'float32', dims: [group.length, side, side, C], data: latents } },
      ['rgb'],
    );
    const rgb = r.rgb;
    if (!rgb || !(rgb.data instanceof Uint8Array))
      throw new AppError('MODEL_INVALID', 'graph vae_decoder returned no uint8 output rgb');
    const per = rgb.data.length / group.length;
    for (let g = 0; g < group.length; g++) out.push(rgb.data.subarray(g * per, (g + 1) * per));
  }
  return out;
}

function concatFloat32(parts: Float32Array[]): Float32Array {
  const all = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    all.set(p, off);
    off += p.length;
  }
  return all;
}

async function encodePngs(rgb: Uint8Array[], px: number): Promise<EncodedImage[]> {
  return Promise.all(
    rgb.map(async (data) => ({
      data: new Uint8Array(await encodeImage({ width: px, height: px, data }, 'png')),
      width: px,
      height: px,
      contentType: 'image/png' as const,
    })),
  );
}

async function decodePngs(model: HarmonModel, job: BatchJob, side: number): Promise<EncodedImage[]> {
  return encodePngs(await vaeDecode(model, job.images, side), side * 16);
}
