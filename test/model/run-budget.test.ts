/**
 * The run budget (src/model/run-budget.ts): one image and its CFG twin at the model's largest
 * size per lm run, so smaller images share a run and no run grows past the budget.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HARMON_0_5B, HARMON_1_5B, HARMON_SMALL, HARMON_TINY } from '../../src/model/config.ts';
import {
  imagePassTokens,
  rowsPerRun,
  rowTokenBudget,
  VAE_IMAGES_PER_RUN,
} from '../../src/model/run-budget.ts';

test('the budget is 2 × (grid + buffer) tokens at maxImageSize', () => {
  // 1024² → 64×64 grid + 64 buffer slots = 4160 tokens per row, two rows.
  assert.equal(imagePassTokens(HARMON_1_5B, 1024), 4160);
  assert.equal(rowTokenBudget(HARMON_1_5B), 8320);
  assert.equal(rowTokenBudget(HARMON_0_5B), 8320);
  assert.equal(rowTokenBudget(HARMON_SMALL), 2 * (32 * 32 + 64)); // maxImageSize 512
  assert.equal(rowTokenBudget(HARMON_TINY), 2 * (16 * 16 + 64)); // 256
});

test('rows per run: one image + twin at the largest size, more rows for smaller images', () => {
  assert.equal(rowsPerRun(rowTokenBudget(HARMON_1_5B), imagePassTokens(HARMON_1_5B, 1024)), 2);
  assert.equal(rowsPerRun(rowTokenBudget(HARMON_1_5B), imagePassTokens(HARMON_1_5B, 512)), 7); // 8320 / 1088
  assert.equal(rowsPerRun(rowTokenBudget(HARMON_1_5B), imagePassTokens(HARMON_1_5B, 256)), 26); // 8320 / 320
  assert.equal(rowsPerRun(rowTokenBudget(HARMON_1_5B), 512), 16); // text prefill of 512-token prompts
  assert.equal(rowsPerRun(rowTokenBudget(HARMON_TINY), imagePassTokens(HARMON_TINY, 256)), 2);
  // A row longer than the budget still runs, alone.
  assert.equal(rowsPerRun(rowTokenBudget(HARMON_TINY), 10_000), 1);
  for (const size of [64, 128, 256, 512, 1024]) {
    const tokens = imagePassTokens(HARMON_1_5B, size);
    assert.ok(
      rowsPerRun(rowTokenBudget(HARMON_1_5B), tokens) * tokens <= rowTokenBudget(HARMON_1_5B),
      `${size}²`,
    );
  }
});

test('vae_decoder decodes one image per run', () => {
  assert.equal(VAE_IMAGES_PER_RUN, 1);
});
