/**
 * lm.onnx, text and describe calls: equal to the module graphs the old model directories ran
 * (embed_tokens → llm; describe's embed_tokens + mar_encoder splice → llm) and, for the logits
 * its new lm_head computes, to the float64 reference. Also the layout facts that keep each weight
 * held once: every weight read by one node (the table by Gather and by lm_head as the left
 * operand, which onnxruntime does not pre-pack), the MAR networks only inside If branches.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LLM_ATTENTION_CHUNKING } from '../../src/model/run-budget.ts';
import { EMBED_KEY } from '../../src/onnx/builders/llm.ts';
import type { GraphBuilder } from '../../src/onnx/graph/graph-builder.ts';
import { f32, i64, randomArray, runModel } from '../helpers/ort.ts';
import { qwen2Forward } from '../reference/qwen2.ts';
import { assertDiff, range } from './llm-fixtures.ts';
import {
  cfg,
  D,
  embedRows,
  H,
  IMG,
  layers,
  lmBytes,
  lmFeeds,
  lmGraph,
  NB,
  old,
  pastFeeds,
  runOldLlm,
  vocab,
  weights,
} from './lm-fixtures.ts';

const EXACT = 0; // same ops on the same values: bit-identical (measured)
const TOL = 1e-4; // the module test's tolerance against the float64 reference (llm.test.ts)

// Two prompts, row 1 right-padded (length 4 of 6), as generate's prefill batches them.
const ids = [
  [3, 17, 99, 250, 7, 12],
  [5, 42, 8, 300, 1, 1],
];
const lengths = [6, 4];
const mask = lengths.map((len) => range(0, 6).map((j) => (j < len ? 1 : 0)));
const positions = [range(0, 6), range(0, 6)];

test('interface: one graph for every LLM call; inputs, outputs, MAR networks only in If branches', () => {
  const past = range(0, layers).flatMap((l) => [`past_key_values.${l}.key`, `past_key_values.${l}.value`]);
  assert.deepEqual(
    lmGraph.inputs.map((i) => i.name),
    [
      'input_ids',
      'attention_mask',
      'position_ids',
      ...past,
      'tokens',
      'visible_idx',
      'enc_pos_grid',
      'pred_idx',
      'dec_pos_grid',
      'diff_pos_grid',
      'logits_at',
    ],
  );
  const present = range(0, layers).flatMap((l) => [`present.${l}.key`, `present.${l}.value`]);
  assert.deepEqual(
    lmGraph.outputs.map((o) => o.name),
    ['logits', 'z', 'last_hidden_state', ...present],
  );
  const ifs = lmGraph.nodes.filter((n) => n.opType === 'If');
  const then = (n: (typeof ifs)[number]) => n.attrs.then_branch as GraphBuilder;
  const otherwise = (n: (typeof ifs)[number]) => n.attrs.else_branch as GraphBuilder;
  const mha = (g: GraphBuilder) => g.nodes.filter((n) => n.opType === 'MultiHeadAttention').length;
  // Every attention lives in an If: each LLM layer's (one call, or query chunks for a long run)
  // and the MAR blocks' in the branches that run them.
  assert.equal(mha(lmGraph), 0);
  const attention = ifs.filter((n) => then(n).name === 'attention_chunks');
  assert.equal(attention.length, layers);
  for (const n of attention) {
    assert.equal(mha(otherwise(n)), 1);
    assert.equal(mha(then(n)), LLM_ATTENTION_CHUNKING.chunks);
  }
  const mar = ifs.filter((n) => !attention.includes(n));
  assert.deepEqual(
    mar.map((n) => then(n).name),
    ['mar_encoder', 'mar_decoder'],
  );
  const [enc, dec] = mar.map(then);
  assert.equal(mha(enc), cfg.mar.encoderDepth);
  assert.equal(mha(dec), cfg.mar.decoderDepth);
});

test('each weight is read by one node (the embedding table: Gather and lm_head’s left operand)', () => {
  const uses = new Map<string, Array<{ op: string; slot: number }>>();
  const walk = (g: GraphBuilder) => {
    for (const n of g.nodes) {
      n.inputs.forEach((v, slot) => {
        uses.set(v, [...(uses.get(v) ?? []), { op: n.opType, slot }]);
      });
      for (const a of Object.values(n.attrs))
        if (a && typeof a === 'object' && 'nodes' in a) walk(a as GraphBuilder);
    }
  };
  walk(lmGraph);
  const weightsOnly = lmGraph.initializers.filter((i) => !i.structural);
  assert.ok(weightsOnly.length > 50);
  for (const init of weightsOnly) {
    const u = uses.get(init.name) ?? [];
    if (init.name === EMBED_KEY)
      assert.deepEqual(u, [
        { op: 'Gather', slot: 0 },
        { op: 'MatMul', slot: 0 },
      ]);
    else assert.equal(u.length, 1, `${init.name} is read by ${u.length} nodes`);
  }
  const names = lmGraph.initializers.map((i) => i.name);
  assert.equal(new Set(names).size, names.length);
});

test('text prefill equals the old embed_tokens → llm (present, hidden) and its logits match the reference', async () => {
  const at: Array<[number, number]> = [
    [0, lengths[0] - 1],
    [1, lengths[1] - 1],
  ];
  const out = await runModel(lmBytes, lmFeeds({ ids, mask, positions, past: pastFeeds(2, 0), logitsAt: at }));
  const ref = await runOldLlm(embedRows(ids.flat()), mask, positions, pastFeeds(2, 0));
  assertDiff(
    out.last_hidden_state.data as Float32Array,
    ref.last_hidden_state.data as Float32Array,
    EXACT,
    'hidden',
  );
  for (let l = 0; l < layers; l++)
    for (const kv of ['key', 'value'])
      assertDiff(
        out[`present.${l}.${kv}`].data as Float32Array,
        ref[`present.${l}.${kv}`].data as Float32Array,
        EXACT,
        `present.${l}.${kv}`,
      );
  assert.deepEqual([...out.logits.dims], [2, vocab]);
  assert.deepEqual([...out.z.dims], [2, 0, D]);
  // Each row's logits at its own last real token (the old llm only gave position S−1): the
  // float64 reference of each prompt alone, unpadded.
  for (const b of [0, 1]) {
    const row = ids[b].slice(0, lengths[b]);
    const r = qwen2Forward(cfg, weights, {
      batch: 1,
      seq: row.length,
      embeds: embedRows(row),
      mask: row.map(() => 1),
      positions: range(0, row.length),
    });
    const got = (out.logits.data as Float32Array).subarray(b * vocab, (b + 1) * vocab);
    assertDiff(got, r.logits, TOL * 10, `row ${b} logits (sums of 64 products)`);
  }
});

test('decode step on the prefill cache equals the old llm decode; R = 0 gives no logits', async () => {
  const pre = await runModel(lmBytes, lmFeeds({ ids, mask, positions, past: pastFeeds(2, 0) }));
  assert.deepEqual([...pre.logits.dims], [0, vocab]);
  const step = { ids: [[77], [78]], mask: mask.map((m) => [...m, 1]), positions: [[6], [4]] };
  const out = await runModel(
    lmBytes,
    lmFeeds({
      ...step,
      past: pastFeeds(2, 6, pre),
      logitsAt: [
        [0, 0],
        [1, 0],
      ],
    }),
  );
  const ref = await runOldLlm(embedRows(step.ids.flat()), step.mask, step.positions, pastFeeds(2, 6, pre));
  assertDiff(
    out.last_hidden_state.data as Float32Array,
    ref.last_hidden_state.data as Float32Array,
    EXACT,
    'hidden',
  );
  assertDiff(
    out['present.1.value'].data as Float32Array,
    ref['present.1.value'].data as Float32Array,
    EXACT,
    'present',
  );
  assertDiff(
    out.logits.data as Float32Array,
    ref.logits.data as Float32Array,
    TOL,
    'logits (Gemm vs MatMul)',
  );
});

test('describe prefill: the <image> slots take the MAR encoder rows in order, as the old splice did', async () => {
  const N = 16;
  const head = [11, 12, 13];
  const tail = [21, 22, 23, 24];
  const prompt = [...head, ...Array(N + NB).fill(IMG), ...tail];
  const T = prompt.length;
  const tokens = f32([1, N, 16], randomArray(N * 16, 7, 1.5));
  const grid = f32([N, D], randomArray(N * D, 8, 0.5));
  const visible = [range(0, N)];
  const out = await runModel(
    lmBytes,
    lmFeeds({
      ids: [prompt],
      mask: [prompt.map(() => 1)],
      positions: [range(0, T)],
      past: pastFeeds(1, 0),
      image: { tokens, visible, grid },
      logitsAt: [[0, T - 1]],
    }),
  );
  // Old path: mar_encoder → llm_in spliced over embed_tokens rows at the first <image> slot → llm.
  const enc = await runModel(old.encoder, {
    tokens,
    visible_idx: i64([1, N], visible[0]),
    enc_pos_grid: grid,
  });
  const embeds = embedRows(prompt);
  embeds.set(enc.llm_in.data as Float32Array, head.length * H);
  const ref = await runOldLlm(embeds, [prompt.map(() => 1)], [range(0, T)], pastFeeds(1, 0));
  assertDiff(
    out.last_hidden_state.data as Float32Array,
    ref.last_hidden_state.data as Float32Array,
    EXACT,
    'hidden',
  );
  assertDiff(
    out['present.0.key'].data as Float32Array,
    ref['present.0.key'].data as Float32Array,
    EXACT,
    'present',
  );
  assertDiff(out.logits.data as Float32Array, ref.logits.data as Float32Array, TOL, 'logits');
  // The splice is really wired: other latents change the text position's logits.
  const other = await runModel(
    lmBytes,
    lmFeeds({
      ids: [prompt],
      mask: [prompt.map(() => 1)],
      positions: [range(0, T)],
      past: pastFeeds(1, 0),
      image: { tokens: f32([1, N, 16], randomArray(N * 16, 9, 1.5)), visible, grid },
      logitsAt: [[0, T - 1]],
    }),
  );
  assertDiff(other.logits.data as Float32Array, out.logits.data as Float32Array, 1e-3, 'image matters', true);
});
