import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HARMON_TINY } from '../../src/model/config.ts';
import { buildEmbedTokens } from '../../src/onnx/builders/embed-tokens.ts';
import { EMBED_KEY } from '../../src/onnx/builders/llm.ts';
import { toModelBytes } from '../../src/onnx/graph/serialize.ts';
import { MemoryWeights } from '../../src/onnx/weights/types.ts';
import { i64, randomArray, runModel } from '../helpers/ort.ts';
import { assertDiff } from './llm-fixtures.ts';

const { vocab, hidden: H } = HARMON_TINY.llm; // the real Qwen vocabulary size
const table = randomArray(vocab * H, 31);
const weights = new MemoryWeights().set(EMBED_KEY, [vocab, H], table);
// Ids across the table, including the first and last rows and the Harmon <image> id.
const ids = [0, 151643, 151645, 7, 151665, vocab - 1];
const expected = Float32Array.from(ids.flatMap((id) => [...table.subarray(id * H, (id + 1) * H)]));

test('embed_tokens gathers table rows for [B,T] ids (real vocabulary, unscaled)', async () => {
  const g = buildEmbedTokens(HARMON_TINY, weights);
  assert.deepEqual(
    g.inputs.map((i) => i.name),
    ['input_ids'],
  );
  assert.deepEqual(
    g.outputs.map((o) => o.name),
    ['inputs_embeds'],
  );
  const out = await runModel(toModelBytes(g), { input_ids: i64([2, 3], ids) });
  assert.deepEqual([...out.inputs_embeds.dims], [2, 3, H]);
  assertDiff(out.inputs_embeds.data as Float32Array, expected, 0, 'fp32 rows are exact');
  // Zero-length sequences are accepted.
  const empty = await runModel(toModelBytes(g), { input_ids: i64([2, 0], []) });
  assert.deepEqual([...empty.inputs_embeds.dims], [2, 0, H]);
});

test('embed_tokens with fp16 weights stays within fp16 rounding', async () => {
  const g = buildEmbedTokens(HARMON_TINY, weights, { weightDType: 'float16' });
  assert.ok(
    g.initializers.some((i) => i.dtype === 'float16'),
    'fp16 initializer',
  );
  const out = await runModel(toModelBytes(g), { input_ids: i64([1, 6], ids) });
  assertDiff(out.inputs_embeds.data as Float32Array, expected, 2e-2 * 1, 'fp16 rows (values in ±1)');
  assertDiff(out.inputs_embeds.data as Float32Array, expected, 1e-6, 'fp16 rounding is visible', true);
});
