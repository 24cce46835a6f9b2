/**
 * llm_image_step.onnx on the spec's hard case (§2.4): a right-padded text cache of length L = 7
 * where the conditional row has Lc = 7 valid tokens and the unconditional row Lu = 4, then S = 5
 * image tokens with mask [tm_b ‖ ones(S)] and positions starting at each row's own length.
 * Checked against the float64 reference on the same padded inputs AND against an unpadded
 * single-row reference run, which proves the padding holes are masked out.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildLlm, buildLlmImageStep } from '../../src/onnx/builders/llm.ts';
import { toModelBytes } from '../../src/onnx/graph/serialize.ts';
import { type Feed, f32, i64, randomArray, runModel } from '../helpers/ort.ts';
import { type KvPair, qwen2Forward } from '../reference/qwen2.ts';
import { assertDiff, flat, randomLlmWeights, range, TINY_SMALL_VOCAB } from './llm-fixtures.ts';

const config = TINY_SMALL_VOCAB;
const { hidden: H, layers, kvHeads, headDim } = config.llm;
const weights = randomLlmWeights(config, 2);
const TOL = 1e-4;
const [L, Lc, Lu, S] = [7, 7, 4, 5];

const text = randomArray(2 * L * H, 21); // row 1 slots Lu…L−1 hold pad-token junk
const image = randomArray(2 * S * H, 22);
const textMask = [range(0, L).map(() => 1), range(0, L).map((j) => (j < Lu ? 1 : 0))];
const stepMask = textMask.map((tm) => [...tm, ...range(0, S).map(() => 1)]);
const stepPositions = [range(Lc, S), range(Lu, S)]; // cumsum(mask) − 1 over the last S entries
const rowOf = (a: Float32Array | Float64Array, row: number) => a.subarray(row * S * H, (row + 1) * S * H);

function feeds(
  embeds: Float32Array,
  mask: number[][],
  positions: number[][],
  past?: KvPair[],
): Record<string, Feed> {
  const [B, Sn] = [positions.length, positions[0].length];
  const P = mask[0].length - Sn;
  const f: Record<string, Feed> = {
    inputs_embeds: f32([B, Sn, H], embeds),
    attention_mask: i64([B, P + Sn], flat(mask)),
    position_ids: i64([B, Sn], flat(positions)),
  };
  for (let l = 0; l < layers; l++) {
    f[`past_key_values.${l}.key`] = f32(
      [B, kvHeads, P, headDim],
      past ? Float32Array.from(past[l].key) : new Float32Array(0),
    );
    f[`past_key_values.${l}.value`] = f32(
      [B, kvHeads, P, headDim],
      past ? Float32Array.from(past[l].value) : new Float32Array(0),
    );
  }
  return f;
}

test('image step over a right-padded text cache matches padded and unpadded references per row', async () => {
  // Text prefill as in §2.4: no padding mask, positions 0…L−1 for every row (pads included).
  const prefillMask = [range(0, L).map(() => 1), range(0, L).map(() => 1)];
  const prefillPos = [range(0, L), range(0, L)];
  const pre = await runModel(toModelBytes(buildLlm(config, weights)), feeds(text, prefillMask, prefillPos));
  const cache = range(0, layers).map((l) => ({
    key: pre[`present.${l}.key`].data as Float32Array,
    value: pre[`present.${l}.value`].data as Float32Array,
  }));

  const step = buildLlmImageStep(config, weights);
  assert.deepEqual(
    step.outputs.map((o) => o.name),
    ['last_hidden_state'],
    'no present.*, no logits',
  );
  const out = await runModel(toModelBytes(step), feeds(image, stepMask, stepPositions, cache));
  assert.deepEqual([...out.last_hidden_state.dims], [2, S, H]);
  const got = out.last_hidden_state.data as Float32Array;

  // 1) Padded reference: its own float64 prefill, then the step with the same mask/positions.
  const refPre = qwen2Forward(
    config,
    weights,
    { batch: 2, seq: L, embeds: text, mask: flat(prefillMask), positions: flat(prefillPos) },
    { logits: false },
  );
  const stepInputs = {
    batch: 2,
    seq: S,
    embeds: image,
    mask: flat(stepMask),
    positions: flat(stepPositions),
    past: refPre.present,
    pastLength: L,
  };
  const refStep = qwen2Forward(config, weights, stepInputs, { logits: false });
  for (const row of [0, 1])
    assertDiff(rowOf(got, row), rowOf(refStep.hidden, row), TOL, `row ${row} vs padded reference`);

  // 2) Unpadded single-row runs: prefill only the row's valid text, then the image tokens.
  for (const [row, len] of [
    [0, Lc],
    [1, Lu],
  ] as const) {
    const rowText = text.subarray(row * L * H, (row * L + len) * H);
    const p = qwen2Forward(
      config,
      weights,
      { batch: 1, seq: len, embeds: rowText, mask: range(0, len).map(() => 1), positions: range(0, len) },
      { logits: false },
    );
    const rowImage = image.subarray(row * S * H, (row + 1) * S * H);
    const r = qwen2Forward(
      config,
      weights,
      {
        batch: 1,
        seq: S,
        embeds: rowImage,
        mask: range(0, len + S).map(() => 1),
        positions: range(len, S),
        past: p.present,
        pastLength: len,
      },
      { logits: false },
    );
    assertDiff(rowOf(got, row), r.hidden, TOL, `row ${row} vs unpadded single-row reference`);
  }

  // Pitfalls §5.1-1: starting the unconditional row at L instead of Lu, or attending to the holes.
  const atL = qwen2Forward(
    config,
    weights,
    { ...stepInputs, positions: flat([range(Lc, S), range(L, S)]) },
    { logits: false },
  );
  assertDiff(rowOf(got, 1), rowOf(atL.hidden, 1), 100 * TOL, 'positions from L must be detectable', true);
  const holesOpen = qwen2Forward(
    config,
    weights,
    { ...stepInputs, mask: range(0, 2 * (L + S)).map(() => 1) },
    { logits: false },
  );
  assertDiff(rowOf(got, 1), rowOf(holesOpen.hidden, 1), 100 * TOL, 'unmasked holes must be detectable', true);
  // Pitfall §5.1-2: causal among the image tokens: changing the last token must leave 0…S−2 alone.
  const perturbed = Float32Array.from(image);
  for (const row of [0, 1]) perturbed.fill(0.5, (row * S + S - 1) * H, (row + 1) * S * H);
  const moved = (await runModel(toModelBytes(step), feeds(perturbed, stepMask, stepPositions, cache)))
    .last_hidden_state.data as Float32Array;
  for (const row of [0, 1]) {
    assertDiff(
      rowOf(got, row).subarray(0, (S - 1) * H),
      rowOf(moved, row).subarray(0, (S - 1) * H),
      1e-6,
      `row ${row}: earlier tokens cannot see later ones`,
    );
    assertDiff(
      rowOf(got, row).subarray((S - 1) * H),
      rowOf(moved, row).subarray((S - 1) * H),
      100 * TOL,
      `row ${row}: last token changed`,
      true,
    );
  }
});

test('llm.onnx on the image-step inputs gives the same hidden state and a grown cache', async () => {
  const pre = qwen2Forward(
    config,
    weights,
    {
      batch: 2,
      seq: L,
      embeds: text,
      mask: range(0, 2 * L).map(() => 1),
      positions: flat([range(0, L), range(0, L)]),
    },
    { logits: false },
  );
  const cache = pre.present.map((p) => ({
    key: Float32Array.from(p.key),
    value: Float32Array.from(p.value),
  }));
  const f = feeds(image, stepMask, stepPositions, cache);
  const full = await runModel(toModelBytes(buildLlm(config, weights)), f);
  const step = await runModel(toModelBytes(buildLlmImageStep(config, weights)), f);
  assertDiff(
    full.last_hidden_state.data as Float32Array,
    step.last_hidden_state.data as Float32Array,
    1e-6,
    'llm.onnx vs llm_image_step.onnx hidden',
  );
  assert.deepEqual([...full['present.0.key'].dims], [2, kvHeads, L + S, headDim]);
  // The text part of the grown cache is the input cache, untouched.
  assertDiff(
    (full['present.1.value'].data as Float32Array).subarray(0, L * headDim),
    cache[1].value.subarray(0, L * headDim),
    0,
    'text part of the grown cache',
  );
});
