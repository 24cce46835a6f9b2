/**
 * generate with the fused mar_step graph (spec §6.10) against the unfused three-graph path on the
 * tiny model: same PNG bytes and latents, same step-level debug data, 2·T + 3 session runs per
 * batch instead of 4·T + 3, and a model directory exported before mar_step still loads and runs.
 */
import assert from 'node:assert/strict';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { StepDebugInfo } from '../../src/harmon/events.ts';
import { generate } from '../../src/harmon/generate.ts';
import { HarmonModel } from '../../src/harmon/harmon-model.ts';
import type { MarStepMode } from '../../src/harmon/mar-condition.ts';
import type { GenerateInput } from '../../src/shared/job-inputs.ts';
import { useTinyModel } from './tiny-model-fixture.ts';

const tiny = useTinyModel();

const base: GenerateInput = { prompt: 'a lighthouse on a cliff at dusk', seed: 11, steps: 8, size: 64 };

async function run(m: HarmonModel, input: GenerateInput, marStep?: MarStepMode) {
  const steps: StepDebugInfo[] = [];
  const result = await generate(m, input, {
    marStep,
    returnLatents: true,
    onStepDebug: (s) => steps.push(s),
  });
  return { result, steps };
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

for (const [label, input] of [
  ['CFG, 2 images', { ...base, count: 2, cfg: 3 }],
  ['cfg = 1', { ...base, cfg: 1 }],
] as const) {
  test(`fused and unfused give the same PNG bytes, latents and step data (${label})`, async () => {
    assert.ok(tiny.model.runtime.has('mar_step'), 'harmon tiny exports mar_step');
    const fused = await run(tiny.model, input);
    const unfused = await run(tiny.model, input, 'unfused');
    assert.equal(fused.result.images.length, unfused.result.images.length);
    for (const [i, img] of fused.result.images.entries())
      assert.deepEqual(Buffer.from(img.data), Buffer.from(unfused.result.images[i].data), `image ${i}`);
    fused.result.latents!.forEach((lat, i) => {
      const d = maxRelDiff(lat, unfused.result.latents![i]);
      assert.ok(d <= 1e-5, `image ${i}: latents differ by ${d} relative`);
    });
    assert.deepEqual(fused.steps, unfused.steps, 'onStepDebug data is path-independent');
    assert.equal(fused.result.meta.sessions.runsByGraph.mar_encoder, undefined);
    assert.equal(unfused.result.meta.sessions.runsByGraph.mar_step, undefined);
  });
}

test('session runs per batch: 2·T + 3 fused, 4·T + 3 unfused', async () => {
  for (const steps of [4, 8]) {
    const fused = (await generate(tiny.model, { ...base, steps })).meta.sessions;
    assert.equal(fused.runs, 2 * steps + 3, `fused, T = ${steps}`);
    assert.deepEqual(fused.runsByGraph, {
      embed_tokens: 1,
      llm: 1,
      mar_step: steps,
      diffusion_sampler: steps,
      vae_decoder: 1,
    });
    const unfused = (await generate(tiny.model, { ...base, steps }, { marStep: 'unfused' })).meta.sessions;
    assert.equal(unfused.runs, 4 * steps + 3, `unfused, T = ${steps}`);
  }
  // count 2 shares the batch: still 2·T + 3 runs, i.e. T + 1.5 per image.
  assert.equal((await generate(tiny.model, { ...base, count: 2 })).meta.sessions.runs, 2 * 8 + 3);
});

test('a model directory without mar_step (exported before it existed) loads and runs unfused', async () => {
  const old = join(tiny.fx.root, 'old');
  await cp(tiny.fx.dir, old, { recursive: true });
  const manifestPath = join(old, 'manifest.json');
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
  const file = manifest.graphs.mar_step.file;
  delete manifest.graphs.mar_step;
  await writeFile(manifestPath, JSON.stringify(manifest));
  await rm(join(old, file));

  const m = await HarmonModel.open(old);
  try {
    assert.equal(m.runtime.has('mar_step'), false);
    const legacy = await run(m, base);
    assert.equal(legacy.result.meta.sessions.runs, 4 * base.steps! + 3);
    const current = await run(tiny.model, base);
    assert.deepEqual(Buffer.from(legacy.result.images[0].data), Buffer.from(current.result.images[0].data));
    await assert.rejects(generate(m, base, { marStep: 'fused' }), { code: 'MODEL_INVALID' });
  } finally {
    await m.close();
  }
});
