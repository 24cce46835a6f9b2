/**
 * HarmonEngine: the pipeline in a worker thread. Same bytes as in process, events and step
 * instrumentation forwarded, the caller's event loop stays free, requests are serialised,
 * cancellation stops within one MAR step, load/input errors keep their codes, and a batch of
 * generate requests shares one loop with events and results per request.
 */
import assert from 'node:assert/strict';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { HarmonEngine } from '../../src/harmon/engine.ts';
import { generate } from '../../src/harmon/generate.ts';
import { HarmonModel } from '../../src/harmon/harmon-model.ts';
import { AppError } from '../../src/shared/errors.ts';
import type { GenerateInput } from '../../src/shared/job-inputs.ts';
import { buildTinyFixture, type TinyFixture } from './tiny-model-fixture.ts';

let fx: TinyFixture;
let engine: HarmonEngine;
const base = { prompt: 'a small boat', seed: 7, steps: 8, size: 64 };

before(async () => {
  fx = await buildTinyFixture();
  engine = await HarmonEngine.start({ modelDir: fx.dir });
});
after(async () => {
  await engine?.close();
  await fx?.cleanup();
});

test('engine reports the model and produces the same PNG bytes as the in-process pipeline', async () => {
  assert.equal(engine.info.demo, true);
  assert.equal(engine.info.maxImageSize, 256);
  const viaWorker = await engine.generate(base);
  const model = await HarmonModel.open(fx.dir);
  try {
    const direct = await generate(model, base);
    assert.deepEqual(Buffer.from(viaWorker.images[0].data), Buffer.from(direct.images[0].data));
  } finally {
    await model.close();
  }
  assert.equal(viaWorker.meta.sessions.runs, 18); // 2T + 1 + G: 8 steps × (lm + sampler) + lm prefill + 1 VAE per image
  assert.ok(viaWorker.meta.sessionMs > 0 && viaWorker.meta.sessionMs <= viaWorker.meta.totalMs);
});

test('events and step debug info are forwarded in order; the event loop keeps ticking', async () => {
  const steps: number[] = [];
  const debug: number[] = [];
  let ticks = 0;
  const timer = setInterval(() => ticks++, 2);
  try {
    await engine.generate(base, {
      onEvent: (e) => e.type === 'step' && steps.push(e.step),
      onStepDebug: (d) => debug.push(d.step),
    });
  } finally {
    clearInterval(timer);
  }
  assert.deepEqual(steps, [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(debug, [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.ok(ticks >= 5, `main loop ticked only ${ticks} times during inference`);
});

test('concurrent requests are serialised and both complete', async () => {
  const order: string[] = [];
  const a = engine.generate(base, { onEvent: (e) => e.type === 'step' && order.push(`a${e.step}`) });
  const b = engine.generate(
    { ...base, seed: 8 },
    { onEvent: (e) => e.type === 'step' && order.push(`b${e.step}`) },
  );
  const [ra, rb] = await Promise.all([a, b]);
  assert.notDeepEqual(Buffer.from(ra.images[0].data), Buffer.from(rb.images[0].data));
  assert.equal(order.indexOf('b1'), 8, `interleaved: ${order.join(',')}`);
});

test('cancel mid-run stops within one MAR step; the engine keeps working', async () => {
  const ac = new AbortController();
  const finishedAt: number[] = [];
  let abortedAt = Number.POSITIVE_INFINITY;
  await assert.rejects(
    engine.generate(
      { ...base, steps: 16 },
      {
        signal: ac.signal,
        onEvent: (e) => {
          if (e.type !== 'step') return;
          finishedAt.push(e.at);
          if (e.step === 2) {
            abortedAt = Date.now();
            ac.abort();
          }
        },
      },
    ),
    (e: unknown) => e instanceof AppError && e.code === 'CANCELED',
  );
  // Step events reach this thread late under load, so count the steps the worker FINISHED after
  // the abort (by its own clock stamps): at most the one that was running when the flag was set.
  const after = finishedAt.filter((t) => t > abortedAt).length;
  assert.ok(after <= 1, `${after} steps finished after the abort`);
  assert.ok(finishedAt.length < 16, 'the run did not stop');
  const pre = new AbortController();
  pre.abort();
  await assert.rejects(engine.generate(base, { signal: pre.signal }), { code: 'CANCELED' });
  const ok = await engine.generate(base);
  assert.equal(ok.images.length, 1);
});

test('generateBatch through the worker: one loop, events and results per job, one canceled alone', async () => {
  const inputs: GenerateInput[] = [
    { ...base, prompt: 'a small boat on a lake at night', seed: 3 },
    { ...base, seed: 4, cfg: 1, count: 2 },
    { ...base, prompt: 'a red house', seed: 5 },
    { ...base, seed: 6 },
  ];
  const solo = await Promise.all(inputs.map((i) => engine.generate(i, { returnLatents: true })));
  const steps = inputs.map((): number[] => []);
  const ac = new AbortController();
  const early = new AbortController();
  early.abort();
  const batch = await engine.generateBatch(
    inputs.map((input, i) => ({
      input,
      options: {
        returnLatents: true,
        signal: i === 2 ? ac.signal : i === 3 ? early.signal : undefined,
        onEvent: (e) => {
          if (e.type !== 'step') return;
          steps[i].push(e.step);
          if (i === 2 && e.step === 1) ac.abort();
        },
      },
    })),
  );
  assert.deepEqual(
    batch.map((r) => r.status),
    ['fulfilled', 'fulfilled', 'rejected', 'rejected'],
  );
  for (const r of batch.slice(2)) assert.equal((r as PromiseRejectedResult).reason.code, 'CANCELED');
  // Each job's own events: the canceled one stopped at its step 1 (the abort crosses threads
  // while the next step may already run, so allow that one), the early one never started.
  assert.deepEqual(steps[0], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(steps[1], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.ok(steps[2].length <= 2 && steps[2][0] === 1, `canceled job steps: ${steps[2]}`);
  assert.deepEqual(steps[3], []);
  for (const i of [0, 1]) {
    const r = (batch[i] as PromiseFulfilledResult<Awaited<(typeof solo)[number]>>).value;
    assert.equal(r.meta.batch?.jobs, 3); // the pre-canceled job never joined
    assert.equal(r.images.length, inputs[i].count ?? 1);
    r.latents!.forEach((lat, g) => {
      const ref = solo[i].latents![g];
      const worst = lat.reduce((m, v, k) => Math.max(m, Math.abs(v - ref[k])), 0);
      const mag = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      assert.ok(worst / mag <= 1e-4, `job ${i} image ${g}: ${worst / mag} relative`);
    });
  }
});

test('input errors cross the thread boundary as AppError with their code', async () => {
  await assert.rejects(
    engine.generate({ ...base, size: 17 }),
    (e: unknown) => e instanceof AppError && e.code === 'BAD_USER_INPUT' && /multiple of 16/.test(e.message),
  );
  await assert.rejects(engine.describe(new Uint8Array([1, 2, 3]), {}), { code: 'IMAGE_INVALID' });
});

test('a model dir with a missing or corrupted graph is refused with MODEL_INVALID', async () => {
  const missing = join(fx.root, 'missing');
  await cp(fx.dir, missing, { recursive: true });
  await rm(join(missing, 'lm.onnx.data'));
  await assert.rejects(HarmonEngine.start({ modelDir: missing }), (e: unknown) => {
    assert.ok(e instanceof AppError && e.code === 'MODEL_INVALID');
    assert.match(e.message, /lm\.onnx\.data.*missing/);
    return true;
  });
  const corrupt = join(fx.root, 'corrupt');
  await cp(fx.dir, corrupt, { recursive: true });
  const file = join(corrupt, 'vae_decoder.onnx');
  const bytes = await readFile(file);
  bytes[bytes.length - 100] ^= 0xff; // same size, different content
  await writeFile(file, bytes);
  await assert.rejects(HarmonEngine.start({ modelDir: corrupt }), (e: unknown) => {
    assert.ok(e instanceof AppError && e.code === 'MODEL_INVALID');
    assert.match(e.message, /vae_decoder\.onnx.*sha256/);
    return true;
  });
});
