/**
 * generate on the tiny model, in process: reproducibility, output format, and the step-level
 * facts of spec §2.4–§2.8 observed through the onStepDebug hook (issue #4 acceptance).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import type { PipelineEvent, StepDebugInfo } from '../../src/harmon/events.ts';
import { generate } from '../../src/harmon/generate.ts';
import { buildGeneratePrompt } from '../../src/harmon/prompts.ts';
import type { GenerateInput } from '../../src/shared/job-inputs.ts';
import { useTinyModel } from './tiny-model-fixture.ts';

const tiny = useTinyModel();

const base: GenerateInput = { prompt: 'a red fox in the snow', seed: 7, steps: 8, size: 64 };

async function traced(input: GenerateInput) {
  const steps: StepDebugInfo[] = [];
  const events: PipelineEvent[] = [];
  const result = await generate(tiny.model, input, {
    onStepDebug: (s) => steps.push(s),
    onEvent: (e) => events.push(e),
  });
  return { result, steps, events };
}

/** Independent of src/harmon/mask-schedule.ts: the §2.6 (g)/(h) formula written out again. */
function expectedPredicted(n: number, t: number): number[] {
  const out: number[] = [];
  let m = n;
  for (let k = 0; k < t; k++) {
    const next = Math.max(1, Math.min(m - 1, Math.floor(n * Math.cos((Math.PI / 2) * ((k + 1) / t)))));
    out.push(k === t - 1 ? m : m - next);
    m = next;
  }
  return out;
}

test('same seed twice gives identical PNG bytes; seed 8 differs; 64×64 RGB', async () => {
  const a = await generate(tiny.model, base);
  const b = await generate(tiny.model, base);
  const c = await generate(tiny.model, { ...base, seed: 8 });
  assert.equal(a.images.length, 1);
  assert.deepEqual(Buffer.from(a.images[0].data), Buffer.from(b.images[0].data));
  assert.notDeepEqual(Buffer.from(a.images[0].data), Buffer.from(c.images[0].data));
  const meta = await sharp(a.images[0].data).metadata();
  assert.equal(meta.format, 'png');
  assert.equal(meta.width, 64);
  assert.equal(meta.height, 64);
  assert.equal(meta.channels, 3);
  assert.equal(a.meta.demo, true);
  assert.equal(a.seed, 7);
});

test('count 2 gives two different images in one batch; image 1 of the batch equals a single run', async () => {
  const two = await generate(tiny.model, { ...base, count: 2 }, { returnLatents: true });
  const one = await generate(tiny.model, base, { returnLatents: true });
  assert.equal(two.images.length, 2);
  assert.notDeepEqual(Buffer.from(two.images[0].data), Buffer.from(two.images[1].data));
  // Rows are independent in every graph and the PRNG forks per image, so batching changes nothing.
  const d = two.latents![0].reduce((m, v, i) => Math.max(m, Math.abs(v - one.latents![0][i])), 0);
  assert.ok(d < 1e-4, `batched vs single latents differ by ${d}`);
  // One batch: 8 MAR steps × (lm + sampler) + lm prefill, not twice that; the VAE decodes one
  // image per run (bounded run sizes, src/harmon/run-chunks.ts).
  assert.equal(two.meta.sessions.runs, 17 + 2);
});

for (const [size, steps] of [
  [64, 8],
  [128, 64],
] as const) {
  test(`tokens predicted per step follow §2.7 for N = ${(size / 16) ** 2}, T = ${steps}; each token exactly once`, async () => {
    const n = (size / 16) ** 2;
    const { steps: info } = await traced({ ...base, size, steps });
    assert.equal(info.length, steps);
    assert.deepEqual(
      info.map((s) => s.predIdx[0].length),
      expectedPredicted(n, steps),
    );
    let visible = 0;
    for (const s of info) {
      assert.equal(s.visible, visible, `visible count at step ${s.step}`);
      visible += s.predIdx[0].length;
    }
    const all = info.flatMap((s) => s.predIdx[0]).sort((x, y) => x - y);
    assert.deepEqual(
      all,
      Array.from({ length: n }, (_, i) => i),
    );
  });
}

test('CFG: twins share predicted indices (ascending), positions start at each row’s own text length, text cache stays L', async () => {
  const input = {
    ...base,
    count: 2,
    cfg: 4,
    cfgPrompt: 'a blurry, ugly, low quality picture with many words',
  };
  const { steps } = await traced(input);
  const batch = buildGeneratePrompt(tiny.model.tokenizer, {
    prompt: input.prompt,
    cfgPrompt: input.cfgPrompt,
    cfg: 4,
    count: 2,
  });
  assert.notEqual(batch.lengths[0], batch.lengths[2], 'test needs different Lc and Lu');
  for (const s of steps) {
    assert.equal(s.batchRows, 4);
    assert.equal(s.guided, true);
    assert.equal(s.conditionRows, 4 * s.predIdx[0].length);
    assert.deepEqual(s.predIdx[2], s.predIdx[0]);
    assert.deepEqual(s.predIdx[3], s.predIdx[1]);
    for (const row of s.predIdx)
      assert.deepEqual(
        row,
        [...row].sort((x, y) => x - y),
      );
    assert.equal(s.textCacheLength, batch.maxLength);
    assert.equal(s.cfgScale, 4);
    s.positionIds.forEach((pos, b) => {
      assert.equal(pos.length, s.visible + 64);
      assert.deepEqual(
        pos,
        pos.map((_, j) => batch.lengths[b] + j),
      );
    });
  }
  // The two images use different orders.
  assert.notDeepEqual(
    steps.map((s) => s.predIdx[0]),
    steps.map((s) => s.predIdx[1]),
  );
});

test('linear CFG schedule ramps to 1 + (cfg−1)(N−1)/N', async () => {
  const { steps } = await traced({ ...base, cfg: 3, cfgSchedule: 'linear' });
  const scales = steps.map((s) => s.cfgScale);
  assert.ok(scales.every((v, i) => i === 0 || v >= scales[i - 1]));
  assert.ok(Math.abs(scales.at(-1)! - (1 + (2 * 15) / 16)) < 1e-12);
});

test('cfg = 1 runs without the unconditional half', async () => {
  const { steps, result } = await traced({ ...base, cfg: 1, count: 2 });
  for (const s of steps) {
    assert.equal(s.batchRows, 2);
    assert.equal(s.guided, false);
    assert.equal(s.conditionRows, 2 * s.predIdx[0].length);
  }
  // 2T + 1 + G session runs: lm prefill, T × (lm image pass + sampler), one vae_decoder per image.
  assert.deepEqual(result.meta.sessions.runsByGraph, { lm: 9, diffusion_sampler: 8, vae_decoder: 2 });
  assert.equal(result.meta.sessions.runs, 2 * 8 + 1 + 2);
});

test('previews every 2 steps do not change the final image', async () => {
  const events: PipelineEvent[] = [];
  const withPreview = await generate(tiny.model, base, { previewEvery: 2, onEvent: (e) => events.push(e) });
  const plain = await generate(tiny.model, base);
  const previews = events.filter((e) => e.type === 'preview');
  assert.deepEqual(
    previews.map((p) => p.step),
    [2, 4, 6],
  );
  const first = previews[0];
  assert.ok(first.type === 'preview' && (await sharp(first.images[0].data).metadata()).width === 64);
  assert.deepEqual(Buffer.from(withPreview.images[0].data), Buffer.from(plain.images[0].data));
  const stages = events.filter((e) => e.type === 'stage').map((e) => e.type === 'stage' && e.stage);
  assert.deepEqual(stages, ['tokenize', 'prefill', 'mar', 'vae_decode', 'encode']);
});

test('cancel mid-run stops within one MAR step with CANCELED', async () => {
  const ac = new AbortController();
  const seen: number[] = [];
  await assert.rejects(
    generate(
      tiny.model,
      { ...base, steps: 16 },
      {
        signal: ac.signal,
        onEvent: (e) => {
          if (e.type !== 'step') return;
          seen.push(e.step);
          if (e.step === 3) ac.abort();
        },
      },
    ),
    { code: 'CANCELED' },
  );
  assert.deepEqual(seen, [1, 2, 3]);
});

test('bad input gives coded errors', async () => {
  const cases: Array<[GenerateInput, RegExp]> = [
    [{ ...base, prompt: '' }, /prompt/],
    [{ ...base, prompt: '   ' }, /prompt/],
    [{ ...base, size: 17 }, /multiple of 16/],
    [{ ...base, size: 512 }, /limit of 256/],
    [{ ...base, steps: 0 }, /steps/],
    [{ ...base, steps: 17 }, /16 image tokens/],
    [{ ...base, cfg: 0.5 }, /cfg/],
    [{ ...base, count: 5 }, /count/],
    [{ ...base, seed: -1 }, /seed/],
  ];
  for (const [input, msg] of cases) {
    await assert.rejects(generate(tiny.model, input), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'BAD_USER_INPUT', `${JSON.stringify(input)}: ${e.message}`);
      assert.match(e.message, msg);
      return true;
    });
  }
});
