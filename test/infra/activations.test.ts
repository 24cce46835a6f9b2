/**
 * The activation model behind the GPU figure (infra/lib/activations.ts) under the run budget
 * (src/model/run-budget.ts): which run sets each session's peak, and that the budget really
 * bounds it. The formulas' fit to real onnxruntime peaks is measured by
 * scripts/measure-run-memory.sh (docs/performance.md), not here: it takes gigabytes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  activationBreakdown,
  CPU_KERNELS,
  CUDA_KERNELS,
  imagePassRun,
  LM_MEASURED_OVER_FORMULA,
  lmRunBytes,
  lmRuns,
  PROMPT_TOKENS,
  vaeDecoderRunBytes,
} from '../../infra/lib/activations.ts';
import { activationBytes, GIB } from '../../infra/lib/memory.ts';
import { HARMON_0_5B, HARMON_1_5B } from '../../src/model/config.ts';
import { imagePassTokens, rowsPerRun, rowTokenBudget } from '../../src/model/run-budget.ts';

test('the lm peak is the image pass at the largest size: smaller images share a run but never exceed it', () => {
  for (const c of [HARMON_0_5B, HARMON_1_5B]) {
    const b = activationBreakdown(c);
    assert.equal(b.lmRun, 'imagePass');
    const runs = lmRuns(c);
    assert.deepEqual(runs.imagePass, { rows: 2, seq: 4160, past: PROMPT_TOKENS, mar: true });
    const peak = lmRunBytes(c, runs.imagePass, CUDA_KERNELS);
    for (const size of [64, 128, 256, 512, 768]) {
      const { rows, seq } = imagePassRun(c, size);
      // The budget counts each row's cached prompt: 15 rows of 64², not the 104 its canvas alone allows.
      assert.equal(rows, rowsPerRun(rowTokenBudget(c), PROMPT_TOKENS + imagePassTokens(c, size)));
      assert.equal(seq, imagePassTokens(c, size));
      const bytes = lmRunBytes(c, imagePassRun(c, size), CUDA_KERNELS);
      assert.ok(rows >= 2 && bytes < peak, `${c.variant} ${size}²: ${rows} rows, ${bytes} >= ${peak}`);
    }
  }
});

test('the budget is what keeps the lm run small: the old batch of 8 rows holds ~4× more', () => {
  const c = HARMON_1_5B;
  const budget = lmRunBytes(c, lmRuns(c).imagePass, CUDA_KERNELS);
  const old = lmRunBytes(c, { ...lmRuns(c).imagePass, rows: 8 }, CUDA_KERNELS);
  assert.ok(old > 3.9 * budget && old <= 4.0001 * budget, `${old / budget}`);
  // On the GPU the LLM's unfused scores (2 copies, of a query chunk) count and the MAR blocks
  // keep none from 256 tokens; the CPU keeps one copy of each, and there the MAR blocks' whole
  // [rows, heads, S, S] scores (not chunked) outweigh the LLM's chunked ones.
  assert.deepEqual([CUDA_KERNELS.llm(4160), CUDA_KERNELS.mar(4160), CUDA_KERNELS.mar(128)], [2, 0, 2]);
  assert.ok(budget < lmRunBytes(c, lmRuns(c).imagePass, CPU_KERNELS));
});

test('vae_decoder: one 1024² image per run holds a quarter of the old 4-image batch', () => {
  const one = vaeDecoderRunBytes(HARMON_1_5B, 1, 1024);
  assert.equal(vaeDecoderRunBytes(HARMON_1_5B, 4, 1024), 4 * one);
  // 6 full-resolution 128-channel fp32 maps (measured), plus the pixels and RGB outputs.
  assert.equal(one, 6 * 128 * 1024 ** 2 * 4 + 3 * 1024 ** 2 * 5);
  assert.equal(activationBreakdown(HARMON_1_5B).vaeDecoder, one);
});

test('the GPU figure sums each session peak, with the measured lm factor', () => {
  for (const c of [HARMON_0_5B, HARMON_1_5B]) {
    const b = activationBreakdown(c);
    assert.equal(b.lm, LM_MEASURED_OVER_FORMULA * lmRunBytes(c, lmRuns(c).imagePass, CUDA_KERNELS));
    assert.equal(b.total, b.lm + b.diffusionSampler + b.vaeDecoder + b.vaeEncoder);
    assert.equal(activationBytes(c), b.total);
    // With the LLM's attention in query chunks the lm session (1.08 × its live tensors after a
    // job's growing passes) is no longer the largest term: the two VAE sessions are.
    assert.ok(b.lm < b.vaeDecoder + b.vaeEncoder, c.variant);
    assert.ok(b.total < 9 * GIB && b.total > 6 * GIB, `${c.variant}: ${b.total / GIB} GiB`);
  }
});
