/**
 * Cross-job batching (issue #14) on the tiny model, in process: four jobs with different prompts
 * (token lengths), negative prompts, seeds, cfg (one at 1, no twins), schedules, temperatures and
 * counts share one MAR loop and each equals its solo run; one canceled mid-batch leaves the rest
 * untouched; row chunking and per-image VAE decoding change no number (issue #11).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import type { GenerateResult, PipelineEvent } from '../../src/harmon/events.ts';
import { generate, generateBatch } from '../../src/harmon/generate.ts';
import { rowTokenBudget } from '../../src/model/run-budget.ts';
import { AppError } from '../../src/shared/errors.ts';
import type { GenerateInput } from '../../src/shared/job-inputs.ts';
import { useTinyModel } from './tiny-model-fixture.ts';

const tiny = useTinyModel();

const common = { size: 64, steps: 8 } as const;
const JOBS: GenerateInput[] = [
  { ...common, prompt: 'a red fox in the snow', seed: 7, cfg: 3 },
  {
    ...common,
    prompt: 'an old stone lighthouse on a windy cliff above a grey sea, painted in thick oils at dusk',
    seed: 11,
    cfg: 1,
    temperature: 0.8,
    count: 2,
  },
  { ...common, prompt: 'cat', seed: 5, cfg: 4.5, cfgSchedule: 'linear', temperature: 1.2, count: 2 },
  { ...common, prompt: 'boats at dawn', cfgPrompt: 'blurry, low quality', seed: 9, cfg: 2, temperature: 0.9 },
];
const rowsOf = (i: GenerateInput) => (i.count ?? 1) * (i.cfg === 1 ? 1 : 2);

/** max |a − b| / max |b| over all images. */
function relDiff(a: Float32Array[], b: Float32Array[]): number {
  let worst = 0;
  let mag = 0;
  b.forEach((ref, g) => {
    ref.forEach((v, i) => {
      worst = Math.max(worst, Math.abs(a[g][i] - v));
      mag = Math.max(mag, Math.abs(v));
    });
  });
  return worst / mag;
}

function fulfilled(r: PromiseSettledResult<GenerateResult>): GenerateResult {
  if (r.status === 'rejected') throw r.reason;
  return r.value;
}

const solos = new Map<number, GenerateResult>();
async function solo(i: number): Promise<GenerateResult> {
  let r = solos.get(i);
  if (!r) {
    r = await generate(tiny.model, JOBS[i], { returnLatents: true });
    solos.set(i, r);
  }
  return r;
}

/**
 * Tolerance: latents within 1e-4 relative, pixels within one 8-bit level. Rows of a job whose text
 * is padded further in the batch than alone attend over more (masked) keys; onnxruntime's
 * attention then sums the same terms in another grouping (~1e-6 relative measured), which can
 * flip a rounding in the PNG. Job 1 has the longest prompt (no extra padding): bytes equal.
 */
async function assertEqualsSolo(i: number, got: GenerateResult): Promise<void> {
  const ref = await solo(i);
  const d = relDiff(got.latents!, ref.latents!);
  assert.ok(d <= 1e-4, `job ${i}: batched latents differ from solo by ${d} relative`);
  assert.equal(got.images.length, ref.images.length);
  for (const [g, im] of got.images.entries()) {
    if (i === 1)
      assert.deepEqual(Buffer.from(im.data), Buffer.from(ref.images[g].data), `job 1 image ${g} PNG`);
    const a = await sharp(im.data).raw().toBuffer();
    const b = await sharp(ref.images[g].data).raw().toBuffer();
    assert.equal(a.length, b.length);
    const worst = a.reduce((m, v, k) => Math.max(m, Math.abs(v - b[k])), 0);
    assert.ok(worst <= 1, `job ${i} image ${g}: pixels differ by up to ${worst} levels`);
  }
}

test('4 different jobs in one batch each equal their solo run, in either order', async () => {
  const events = JOBS.map((): PipelineEvent[] => []);
  const batch = await generateBatch(
    tiny.model,
    JOBS.map((input, i) => ({ input, run: { returnLatents: true, onEvent: (e) => events[i].push(e) } })),
  );
  const results = batch.map(fulfilled);
  for (const [i, r] of results.entries()) await assertEqualsSolo(i, r);

  // Each job saw its own events: 8 steps, its stages, once.
  for (const ev of events) {
    assert.deepEqual(
      ev.filter((e) => e.type === 'step').map((e) => e.step),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    assert.deepEqual(
      ev.filter((e) => e.type === 'stage').map((e) => e.stage),
      ['tokenize', 'prefill', 'mar', 'vae_decode', 'encode'],
    );
  }

  // One loop: the runs of one request of 10 rows, not four requests' worth. Tiny's budget is
  // 2 × (16² + 64 + 512) = 1,664 token-rows; a 64² row costs its text cache (these prompts pad
  // to well under 64 tokens) + 16 + 64, so all 10 rows share each step's image-pass run.
  const totalRows = JOBS.reduce((a, j) => a + rowsOf(j), 0);
  assert.equal(totalRows, 10);
  assert.equal(rowTokenBudget(tiny.model.config), 1664);
  const { runsByGraph } = results[3].meta.sessions;
  assert.deepEqual(runsByGraph, { lm: 1 + 8, diffusion_sampler: 8, vae_decoder: 6 });

  // GPU-ms shares: every job's meta says who it ran with; the shares add up to the batch's wall.
  results.forEach((r, i) => {
    assert.deepEqual(
      { ...r.meta.batch, wallMs: 0 },
      { jobs: 4, rows: rowsOf(JOBS[i]), totalRows, wallMs: 0 },
    );
    assert.ok(r.meta.totalMs > 0 && r.meta.sessionMs <= r.meta.totalMs + 1e-6);
  });
  const sum = results.reduce((a, r) => a + r.meta.totalMs, 0);
  const wall = Math.max(...results.map((r) => r.meta.batch!.wallMs));
  assert.ok(Math.abs(sum - wall) < 1, `shares sum to ${sum} ms, batch wall ${wall} ms`);
  // The 4-row job C is charged more than the 2-row job A for the same shared steps.
  assert.ok(results[2].meta.stageMs.mar_step > results[0].meta.stageMs.mar_step);

  const reversed = await generateBatch(
    tiny.model,
    [...JOBS].reverse().map((input) => ({ input, run: { returnLatents: true } })),
  );
  for (const [j, r] of reversed.entries()) await assertEqualsSolo(JOBS.length - 1 - j, fulfilled(r));
});

test('canceling one job after step 1 rejects it with CANCELED; the other 3 equal their solo runs', async () => {
  const ac = new AbortController();
  const steps: number[] = [];
  const batch = await generateBatch(
    tiny.model,
    JOBS.map((input, i) => ({
      input,
      run: {
        returnLatents: true,
        ...(i === 2
          ? {
              signal: ac.signal,
              onEvent: (e: PipelineEvent) => {
                if (e.type !== 'step') return;
                steps.push(e.step);
                if (e.step === 1) ac.abort();
              },
            }
          : {}),
      },
    })),
  );
  const canceled = batch[2];
  assert.equal(canceled.status, 'rejected');
  assert.ok(
    canceled.reason instanceof AppError && canceled.reason.code === 'CANCELED',
    String(canceled.reason),
  );
  assert.deepEqual(steps, [1], 'the canceled job left the batch at the next step');
  for (const i of [0, 1, 3]) await assertEqualsSolo(i, fulfilled(batch[i]));
  // Its rows were dropped: steps 2..8 ran without them, one image-pass run each.
  assert.equal(fulfilled(batch[0]).meta.sessions.runsByGraph.lm, 1 + 1 + 7);
});

test('a job that fails to resolve rejects alone; jobs of another size run as their own loop', async () => {
  const batch = await generateBatch(tiny.model, [
    { input: JOBS[0], run: { returnLatents: true } },
    { input: { ...JOBS[1], steps: 999 } },
    { input: { ...JOBS[3], size: 128 } },
  ]);
  assert.equal(batch[1].status, 'rejected');
  assert.equal((batch[1] as PromiseRejectedResult).reason.code, 'BAD_USER_INPUT');
  await assertEqualsSolo(0, fulfilled(batch[0]));
  assert.equal(fulfilled(batch[2]).images[0].width, 128);
  assert.equal(fulfilled(batch[2]).meta.batch?.jobs, 1);
});

test('row chunks change no number: one row per run equals one run for all rows', async () => {
  const run = (rowTokenBudget: number) =>
    generateBatch(
      tiny.model,
      JOBS.map((input) => ({ input, run: { returnLatents: true } })),
      { rowTokenBudget },
    );
  const chunked = (await run(1)).map(fulfilled);
  const whole = (await run(Number.POSITIVE_INFINITY)).map(fulfilled);
  const rows = JOBS.reduce((a, j) => a + rowsOf(j), 0);
  assert.equal(chunked[0].meta.sessions.runsByGraph.lm, rows + 8 * rows); // prefill + image pass, 1 row/run
  assert.equal(whole[0].meta.sessions.runsByGraph.lm, 1 + 8);
  chunked.forEach((r, i) => {
    assert.ok(relDiff(r.latents!, whole[i].latents!) <= 1e-6, `job ${i} chunked vs whole`);
    r.images.forEach((im, g) => {
      assert.deepEqual(Buffer.from(im.data), Buffer.from(whole[i].images[g].data));
    });
  });
});

test('vae_decoder: one image per run decodes the same bytes as the whole batch in one run', async () => {
  const r = await solo(2); // count 2
  const side = 64 / 16;
  const decode = async (latents: Float32Array, g: number) => {
    const out = await tiny.model.runtime.run(
      'vae_decoder',
      { latents: { dtype: 'float32', dims: [g, side, side, 16], data: latents } },
      ['rgb'],
    );
    return Buffer.from(out.rgb.data as Uint8Array);
  };
  const both = new Float32Array(2 * side * side * 16);
  both.set(r.latents![0]);
  both.set(r.latents![1], side * side * 16);
  const batched = await decode(both, 2);
  const single = Buffer.concat([await decode(r.latents![0], 1), await decode(r.latents![1], 1)]);
  assert.equal(batched.length, 2 * 64 * 64 * 3);
  assert.deepEqual(single, batched);
});
