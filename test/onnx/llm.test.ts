/**
 * llm.onnx vs the float64 reference (test/reference/qwen2.ts): batch-2 prefill with P = 0, a
 * decode step fed the prefill's present, negative checks for the RoPE layout and GQA grouping,
 * fp16 weights, and the real Qwen vocabulary size for logits.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HARMON_TINY } from '../../src/model/config.ts';
import { buildLlm } from '../../src/onnx/builders/llm.ts';
import { toModelBytes } from '../../src/onnx/graph/serialize.ts';
import { type Feed, f32, i64, randomArray, runModel } from '../helpers/ort.ts';
import { type KvPair, qwen2Forward } from '../reference/qwen2.ts';
import { assertDiff, flat, maxAbs, randomLlmWeights, range, TINY_SMALL_VOCAB } from './llm-fixtures.ts';

const config = TINY_SMALL_VOCAB;
const { hidden: H, layers, kvHeads, headDim, vocab } = config.llm;
const weights = randomLlmWeights(config);
const model = toModelBytes(buildLlm(config, weights));
const TOL = 1e-4;

function pastFeeds(past: KvPair[] | undefined, B: number, P: number): Record<string, Feed> {
  const feeds: Record<string, Feed> = {};
  for (let l = 0; l < layers; l++) {
    const dims = [B, kvHeads, P, headDim];
    feeds[`past_key_values.${l}.key`] = f32(
      dims,
      past ? Float32Array.from(past[l].key) : new Float32Array(0),
    );
    feeds[`past_key_values.${l}.value`] = f32(
      dims,
      past ? Float32Array.from(past[l].value) : new Float32Array(0),
    );
  }
  return feeds;
}

async function runLlm(
  bytes: Uint8Array,
  embeds: Float32Array,
  mask: number[][],
  positions: number[][],
  past?: KvPair[],
) {
  const [B, S] = [positions.length, positions[0].length];
  const P = mask[0].length - S;
  return runModel(bytes, {
    inputs_embeds: f32([B, S, H], embeds),
    attention_mask: i64([B, P + S], flat(mask)),
    position_ids: i64([B, S], flat(positions)),
    ...pastFeeds(past, B, P),
  });
}

const presentOf = (out: Awaited<ReturnType<typeof runLlm>>): KvPair[] =>
  range(0, layers).map((l) => ({
    key: out[`present.${l}.key`].data as Float32Array,
    value: out[`present.${l}.value`].data as Float32Array,
  }));

/** Hidden state, last-position logits and every layer's present key against the reference. */
function assertMatchesReference(
  out: Awaited<ReturnType<typeof runLlm>>,
  ref: ReturnType<typeof qwen2Forward>,
  label: string,
): void {
  assertDiff(out.last_hidden_state.data as Float32Array, ref.hidden, TOL, `${label} hidden`);
  assertDiff(out.logits.data as Float32Array, ref.logits, TOL * 10, `${label} logits`);
  for (let l = 0; l < layers; l++)
    assertDiff(
      out[`present.${l}.key`].data as Float32Array,
      ref.present[l].key,
      TOL,
      `${label} present.${l}.key`,
    );
}

// Shared scenario: prefill 7 tokens for 2 rows, then a 2-token decode step on that cache.
const prefill = {
  embeds: randomArray(2 * 7 * H, 11),
  mask: [range(1, 7).fill(1), range(1, 7).fill(1)],
  positions: [range(0, 7), range(0, 7)],
};
const decode = {
  embeds: randomArray(2 * 2 * H, 12),
  mask: [range(1, 9).fill(1), range(1, 9).fill(1)],
  positions: [
    [7, 8],
    [7, 8],
  ],
};

test('prefill (batch 2, P = 0) matches the reference: hidden, logits and present', async () => {
  const out = await runLlm(model, prefill.embeds, prefill.mask, prefill.positions);
  const ref = qwen2Forward(config, weights, {
    batch: 2,
    seq: 7,
    embeds: prefill.embeds,
    mask: flat(prefill.mask),
    positions: flat(prefill.positions),
  });
  assert.deepEqual([...out.last_hidden_state.dims], [2, 7, H]);
  assert.deepEqual([...out.logits.dims], [2, vocab]);
  assert.deepEqual([...out['present.1.key'].dims], [2, kvHeads, 7, headDim]);
  assertDiff(out.last_hidden_state.data as Float32Array, ref.hidden, TOL, 'prefill hidden');
  assertDiff(out.logits.data as Float32Array, ref.logits, TOL * 10, 'prefill logits (sums of 64 products)');
  for (let l = 0; l < layers; l++) {
    assertDiff(
      out[`present.${l}.key`].data as Float32Array,
      ref.present[l].key,
      TOL,
      `prefill present.${l}.key`,
    );
    assertDiff(
      out[`present.${l}.value`].data as Float32Array,
      ref.present[l].value,
      TOL,
      `prefill present.${l}.value`,
    );
  }
  assert.ok(maxAbs(ref.hidden) > 0.5, 'activations are not degenerate');
});

test('decode step with P = 7 fed the prefill present matches the reference; wrong RoPE layout / GQA grouping would not', async () => {
  const pre = await runLlm(model, prefill.embeds, prefill.mask, prefill.positions);
  const past = presentOf(pre);
  const out = await runLlm(model, decode.embeds, decode.mask, decode.positions, past);
  const inputs = {
    batch: 2,
    seq: 2,
    embeds: decode.embeds,
    mask: flat(decode.mask),
    positions: flat(decode.positions),
    past,
    pastLength: 7,
  };
  const ref = qwen2Forward(config, weights, inputs);
  assert.deepEqual([...out['present.0.value'].dims], [2, kvHeads, 9, headDim]);
  assertMatchesReference(out, ref, 'decode');

  // Pitfall §5.1-13: interleaved (GPT-J) RoPE instead of rotate_half.
  const interleaved = qwen2Forward(config, weights, inputs, { rope: 'interleaved', logits: false });
  assertDiff(
    out.last_hidden_state.data as Float32Array,
    interleaved.hidden,
    100 * TOL,
    'interleaved RoPE must be detectable',
    true,
  );
  // GQA grouping: query head h reads ⌊h/(nh/nkv)⌋, not h % nkv.
  const modGroup = qwen2Forward(config, weights, inputs, {
    kvHeadOf: (h, _nh, nkv) => h % nkv,
    logits: false,
  });
  assertDiff(
    out.last_hidden_state.data as Float32Array,
    modGroup.hidden,
    100 * TOL,
    'h % nkv grouping must be detectable',
    true,
  );
});

test('positions come from position_ids, not from the mask', async () => {
  // RoPE is relative, so a uniform shift of a whole prefill changes nothing; decode positions
  // that jump past the cache (row 1 at 20, 21) must change the result and match the reference.
  const past = presentOf(await runLlm(model, prefill.embeds, prefill.mask, prefill.positions));
  const jumped = [
    [7, 8],
    [20, 21],
  ];
  const a = await runLlm(model, decode.embeds, decode.mask, decode.positions, past);
  const b = await runLlm(model, decode.embeds, decode.mask, jumped, past);
  const inputs = {
    batch: 2,
    seq: 2,
    embeds: decode.embeds,
    mask: flat(decode.mask),
    positions: flat(jumped),
    past,
    pastLength: 7,
  };
  const ref = qwen2Forward(config, weights, inputs, { logits: false });
  const [ha, hb] = [a.last_hidden_state.data as Float32Array, b.last_hidden_state.data as Float32Array];
  assertDiff(hb, ref.hidden, TOL, 'jumped positions vs reference');
  assertDiff(ha.subarray(0, 2 * H), hb.subarray(0, 2 * H), TOL, 'row 0 positions unchanged');
  assertDiff(ha.subarray(2 * H), hb.subarray(2 * H), 100 * TOL, 'row 1 follows its own position_ids', true);
});

test('fp16 weights stay within 2e-2 relative of the reference', async () => {
  const fp16 = buildLlm(config, weights, { weightDType: 'float16' });
  assert.ok(
    fp16.initializers.some((i) => i.dtype === 'float16'),
    'fp16 initializers',
  );
  const out = await runLlm(toModelBytes(fp16), prefill.embeds, prefill.mask, prefill.positions);
  const ref = qwen2Forward(config, weights, {
    batch: 2,
    seq: 7,
    embeds: prefill.embeds,
    mask: flat(prefill.mask),
    positions: flat(prefill.positions),
  });
  assertDiff(
    out.last_hidden_state.data as Float32Array,
    ref.hidden,
    2e-2 * maxAbs(ref.hidden),
    'fp16 hidden (2e-2 relative)',
  );
  assertDiff(
    out.logits.data as Float32Array,
    ref.logits,
    2e-2 * maxAbs(ref.logits),
    'fp16 logits (2e-2 relative)',
  );
});

test('real tiny vocabulary (151936 rows): last-position logits match the tied-embedding product', async () => {
  const w = randomLlmWeights(HARMON_TINY, 3);
  const g = buildLlm(HARMON_TINY, w);
  assert.ok(
    g.nodes.some((n) => n.name === '/llm/layers.1/attn/q_proj/MatMul'),
    'path-style node names',
  );
  assert.ok(!g.initializers.some((i) => i.name.includes('lm_head')), 'lm_head is tied, not stored twice');
  const embeds = randomArray(2 * 3 * H, 13);
  const ones = [1, 1, 1];
  const out = await runLlm(
    toModelBytes(g),
    embeds,
    [ones, ones],
    [
      [0, 1, 2],
      [0, 1, 2],
    ],
  );
  const ref = qwen2Forward(HARMON_TINY, w, {
    batch: 2,
    seq: 3,
    embeds,
    mask: [...ones, ...ones],
    positions: [0, 1, 2, 0, 1, 2],
  });
  assert.deepEqual([...out.logits.dims], [2, 151936]);
  assertDiff(out.logits.data as Float32Array, ref.logits, 1e-3, 'real-vocab logits');
  assertDiff(out.last_hidden_state.data as Float32Array, ref.hidden, TOL, 'real-vocab hidden');
});

test('single-token decode (S = 1, the describe loop) with a right-padded cache matches the reference', async () => {
  const past = presentOf(await runLlm(model, prefill.embeds, prefill.mask, prefill.positions));
  const embeds = randomArray(2 * H, 14);
  const mask = [range(0, 8).map(() => 1), range(0, 8).map((j) => (j < 5 || j === 7 ? 1 : 0))];
  const positions = [[7], [5]];
  const out = await runLlm(model, embeds, mask, positions, past);
  const ref = qwen2Forward(config, weights, {
    batch: 2,
    seq: 1,
    embeds,
    mask: flat(mask),
    positions: flat(positions),
    past,
    pastLength: 7,
  });
  assertDiff(out.last_hidden_state.data as Float32Array, ref.hidden, TOL, 'S=1 hidden');
  assertDiff(out.logits.data as Float32Array, ref.logits, TOL * 10, 'S=1 logits');
  assertDiff(out['present.0.value'].data as Float32Array, ref.present[0].value, TOL, 'S=1 present.0.value');
});

test('graph interface follows §6.5 (Optimum / onnxruntime-genai names, symbolic dims)', () => {
  const g = buildLlm(config, weights);
  const inputs = Object.fromEntries(g.inputs.map((i) => [i.name, [i.dtype, i.dims]]));
  assert.deepEqual(inputs.inputs_embeds, ['float32', ['batch_size', 'sequence_length', H]]);
  assert.deepEqual(inputs.attention_mask, ['int64', ['batch_size', 'total_sequence_length']]);
  assert.deepEqual(inputs.position_ids, ['int64', ['batch_size', 'sequence_length']]);
  assert.deepEqual(inputs['past_key_values.1.value'], [
    'float32',
    ['batch_size', kvHeads, 'past_sequence_length', headDim],
  ]);
  const outputs = g.outputs.map((o) => o.name);
  assert.deepEqual(outputs.slice(0, 2), ['last_hidden_state', 'logits']);
  assert.deepEqual(
    outputs.slice(2),
    range(0, layers).flatMap((l) => [`present.${l}.key`, `present.${l}.value`]),
  );
  assert.equal(g.inputs.length, 3 + 2 * layers);
});

test('other GQA ratios (6 query heads per KV head, like 1.5B) match the reference', async () => {
  const c6 = {
    ...config,
    llm: { ...config.llm, hidden: 96, heads: 12, kvHeads: 2, headDim: 8, intermediate: 64, vocab: 64 },
  };
  const w = randomLlmWeights(c6, 4);
  const embeds = randomArray(2 * 3 * 96, 15);
  const mask = [1, 1, 1, 1, 1, 0];
  const positions = [0, 1, 2, 0, 1, 2];
  const feeds: Record<string, Feed> = {
    inputs_embeds: f32([2, 3, 96], embeds),
    attention_mask: i64([2, 3], mask),
    position_ids: i64([2, 3], positions),
  };
  for (let l = 0; l < c6.llm.layers; l++)
    for (const kind of ['key', 'value'])
      feeds[`past_key_values.${l}.${kind}`] = f32([2, 2, 0, 8], new Float32Array(0));
  const out = await runModel(toModelBytes(buildLlm(c6, w)), feeds);
  const ref = qwen2Forward(c6, w, { batch: 2, seq: 3, embeds, mask, positions });
  assertDiff(out.last_hidden_state.data as Float32Array, ref.hidden, TOL, '12/2 heads hidden');
  assertDiff(out.logits.data as Float32Array, ref.logits, TOL * 10, '12/2 heads logits');
});

test('long runs in query chunks (the image pass shape: a right-padded cache with holes) match the reference and the one-call graph', async () => {
  // Chunked above 9 new tokens in 3 slices: S = 11 runs as 4 + 4 + 3 queries; S = 2 runs whole.
  const chunked = toModelBytes(buildLlm(config, weights, { attentionChunking: { above: 9, chunks: 3 } }));
  const whole = toModelBytes(buildLlm(config, weights, { attentionChunking: null }));
  const past = presentOf(await runLlm(whole, prefill.embeds, prefill.mask, prefill.positions));
  const S = 11;
  const embeds = randomArray(2 * S * H, 15);
  // Row 1's text is 5 tokens of the 7 cached (right-padded, like [tm_b ‖ ones(S)]).
  const mask = [range(0, 7 + S).map(() => 1), range(0, 7 + S).map((j) => (j < 5 || j >= 7 ? 1 : 0))];
  const positions = [range(7, S), range(5, S)];
  const out = await runLlm(chunked, embeds, mask, positions, past);
  const one = await runLlm(whole, embeds, mask, positions, past);
  const ref = qwen2Forward(config, weights, {
    batch: 2,
    seq: S,
    embeds,
    mask: flat(mask),
    positions: flat(positions),
    past,
    pastLength: 7,
  });
  assertMatchesReference(out, ref, 'chunked');
  assertDiff(
    out.last_hidden_state.data as Float32Array,
    one.last_hidden_state.data as Float32Array,
    1e-6,
    'chunked = one call',
  );
  // A short run takes the one-call branch of the chunked graph: identical bytes.
  const shortChunked = await runLlm(chunked, decode.embeds, decode.mask, decode.positions, past);
  const shortWhole = await runLlm(whole, decode.embeds, decode.mask, decode.positions, past);
  assert.deepEqual(shortChunked.last_hidden_state.data, shortWhole.last_hidden_state.data);
  // A wrong slice (e.g. bias rows not moving with the queries) would not match.
  const prefillChunked = await runLlm(
    chunked,
    randomArray(2 * S * H, 16),
    [range(0, S).fill(1), range(0, S).fill(1)],
    [range(0, S), range(0, S)],
  );
  const prefillRef = qwen2Forward(config, weights, {
    batch: 2,
    seq: S,
    embeds: randomArray(2 * S * H, 16),
    mask: flat([range(0, S).fill(1), range(0, S).fill(1)]),
    positions: flat([range(0, S), range(0, S)]),
  });
  assertDiff(
    prefillChunked.last_hidden_state.data as Float32Array,
    prefillRef.hidden,
    TOL,
    'chunked causal prefill',
  );
});
