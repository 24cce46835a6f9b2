/**
 * The run budget (src/model/run-budget.ts): one image and its CFG twin at the model's largest
 * size (with a PROMPT_TOKENS prompt cached) per lm run, so smaller images share a run and no run
 * grows past the budget.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HARMON_0_5B, HARMON_1_5B, HARMON_SMALL, HARMON_TINY } from '../../src/model/config.ts';
import {
  imagePassTokens,
  PROMPT_TOKENS,
  rowsPerRun,
  rowTokenBudget,
  VAE_IMAGES_PER_RUN,
} from '../../src/model/run-budget.ts';

test('the budget is 2 × (cached prompt + grid + buffer) tokens at maxImageSize', () => {
  // 1024² → 64×64 grid + 64 buffer slots = 4160 tokens per row, plus a 512-token prompt, two rows.
  assert.equal(imagePassTokens(HARMON_1_5B, 1024), 4160);
  assert.equal(PROMPT_TOKENS, 512);
  assert.equal(rowTokenBudget(HARMON_1_5B), 9344);
  assert.equal(rowTokenBudget(HARMON_0_5B), 9344);
  assert.equal(rowTokenBudget(HARMON_SMALL), 2 * (32 * 32 + 64 + 512)); // maxImageSize 512
  assert.equal(rowTokenBudget(HARMON_TINY), 2 * (16 * 16 + 64 + 512)); // 256
});

test('rows per run: one image + twin at the largest size, more rows for smaller images', () => {
  // An image-pass row costs its cached prompt plus its canvas (src/harmon/lm-passes.ts).
  const row = (size: number, prompt = PROMPT_TOKENS) => prompt + imagePassTokens(HARMON_1_5B, size);
  const budget = rowTokenBudget(HARMON_1_5B);
  assert.equal(rowsPerRun(budget, row(1024)), 2);
  assert.equal(rowsPerRun(budget, row(1024, 30)), 2);
  assert.equal(rowsPerRun(budget, row(512)), 5); // 9344 / 1600
  assert.equal(rowsPerRun(budget, row(512, 30)), 8); // 9344 / 1118
  assert.equal(rowsPerRun(budget, row(256, 30)), 26); // 9344 / 350
  assert.equal(rowsPerRun(budget, row(64)), 15); // 9344 / 592: the caches bound small images
  assert.equal(rowsPerRun(budget, 512), 18); // text prefill of 512-token prompts
  assert.equal(rowsPerRun(rowTokenBudget(HARMON_TINY), PROMPT_TOKENS + imagePassTokens(HARMON_TINY, 256)), 2);
  // A row longer than the budget still runs, alone.
  assert.equal(rowsPerRun(rowTokenBudget(HARMON_TINY), 10_000), 1);
  for (const size of [64, 128, 256, 512, 1024])
    for (const prompt of [16, 128, PROMPT_TOKENS])
      assert.ok(rowsPerRun(budget, row(size, prompt)) * row(size, prompt) <= budget, `${size}², ${prompt}`);
});

test('vae_decoder decodes one image per run', () => {
  assert.equal(VAE_IMAGES_PER_RUN, 1);
});
