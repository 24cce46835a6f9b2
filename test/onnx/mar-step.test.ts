/**
 * mar_step.onnx (spec §6.10) equals the three-graph chain mar_encoder → llm_image_step →
 * mar_decoder on the same inputs: batch 2 with different visible/pred sets per row, 0 < V < N,
 * a text cache of length P = 6 whose second row is right-padded (mask holes, positions from its
 * own length), and the V = 0 first step. Also: its interface is exactly the §6.10 one and the
 * LLM path is really wired (changing the cache changes z).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildLlmImageStep } from '../../src/onnx/builders/llm.ts';
import { buildMarDecoder } from '../../src/onnx/builders/mar-decoder.ts';
import { buildMarEncoder } from '../../src/onnx/builders/mar-encoder.ts';
import { buildMarStep } from '../../src/onnx/builders/mar-step.ts';
import { toModelBytes } from '../../src/onnx/graph/serialize.ts';
import { randomHarmonWeights } from '../../src/onnx/weights/random.ts';
import { type Feed, f32, i64, maxAbsDiff, randomArray, runModel } from '../helpers/ort.ts';
import { TINY_SMALL_VOCAB } from './llm-fixtures.ts';
import { randomIndexSets } from './mar-fixtures.ts';

const cfg = TINY_SMALL_VOCAB;
const { width: D, buffer: NB } = cfg.mar;
const { layers, kvHeads, headDim } = cfg.llm;
const weights = randomHarmonWeights(cfg, 5, { includeVae: false });
const N = 16;
const P = 6;
const lengths = [6, 4]; // row 1: Lu = 4, slots 4..5 are padding
const TOL = 1e-5;

const encBytes = toModelBytes(buildMarEncoder(cfg, weights));
const llmBytes = toModelBytes(buildLlmImageStep(cfg, weights));
const decBytes = toModelBytes(buildMarDecoder(cfg, weights));
const step = buildMarStep(cfg, weights);
const stepBytes = toModelBytes(step);

interface Case {
  v: number;
  k: number;
  seed: number;
}

/** Feeds of one step: disjoint visible/pred sets per row, padded cache, §2.4 mask and positions. */
function stepFeeds({ v, k, seed }: Case, cacheScale = 1): Record<string, Feed> {
  const orders = randomIndexSets(2, N, N, seed).map((all, b) => {
    const r = randomArray(N, seed + 10 + b);
    return all.sort((x, y) => r[x] - r[y]);
  });
  const visible = orders.map((o) => o.slice(0, v).sort((x, y) => x - y));
  const pred = orders.map((o) => o.slice(v, v + k).sort((x, y) => x - y));
  const s = v + NB;
  const mask = lengths.flatMap((len) => [
    ...Array.from({ length: P }, (_, j) => (j < len ? 1 : 0)),
    ...Array(s).fill(1),
  ]);
  const positions = lengths.flatMap((len) => Array.from({ length: s }, (_, j) => len + j));
  const feeds: Record<string, Feed> = {
    tokens: f32([2, v, 16], randomArray(2 * v * 16, seed + 1, 1.5)),
    visible_idx: i64([2, v], visible.flat()),
    pred_idx: i64([2, k], pred.flat()),
    enc_pos_grid: f32([N, D], randomArray(N * D, seed + 2, 0.5)),
    dec_pos_grid: f32([N, D], randomArray(N * D, seed + 3, 0.5)),
    diff_pos_grid: f32([N, D], randomArray(N * D, seed + 4, 0.5)),
    attention_mask: i64([2, P + s], mask),
    position_ids: i64([2, s], positions),
  };
  for (let l = 0; l < layers; l++) {
    for (const [j, kv] of ['key', 'value'].entries()) {
      const n = 2 * kvHeads * P * headDim;
      feeds[`past_key_values.${l}.${kv}`] = f32(
        [2, kvHeads, P, headDim],
        randomArray(n, seed + 20 + 2 * l + j, cacheScale),
      );
    }
  }
  return feeds;
}

function pick(feeds: Record<string, Feed>, names: string[]): Record<string, Feed> {
  return Object.fromEntries(names.map((n) => [n, feeds[n]]));
}

/** The unfused chain, exactly as the pipeline runs it when mar_step is absent. */
async function chain(feeds: Record<string, Feed>): Promise<Float32Array> {
  const enc = await runModel(encBytes, pick(feeds, ['tokens', 'visible_idx', 'enc_pos_grid']));
  const past = Object.keys(feeds).filter((n) => n.startsWith('past_key_values.'));
  const llm = await runModel(llmBytes, {
    ...pick(feeds, ['attention_mask', 'position_ids', ...past]),
    inputs_embeds: f32([...enc.llm_in.dims], enc.llm_in.data as Float32Array),
  });
  const h = llm.last_hidden_state;
  const dec = await runModel(decBytes, {
    ...pick(feeds, ['visible_idx', 'pred_idx', 'dec_pos_grid', 'diff_pos_grid']),
    x_enc: f32([...enc.x_enc.dims], enc.x_enc.data as Float32Array),
    llm_out: f32([...h.dims], h.data as Float32Array),
  });
  return dec.z.data as Float32Array;
}

test('interface is §6.10: the small tensors in, z out; node names keep the module path', () => {
  const past = Array.from({ length: layers }, (_, l) => [
    `past_key_values.${l}.key`,
    `past_key_values.${l}.value`,
  ]).flat();
  assert.deepEqual(
    step.inputs.map((i) => i.name).sort(),
    [
      'attention_mask',
      'dec_pos_grid',
      'diff_pos_grid',
      'enc_pos_grid',
      ...past,
      'position_ids',
      'pred_idx',
      'tokens',
      'visible_idx',
    ].sort(),
  );
  assert.deepEqual(
    step.outputs.map((o) => o.name),
    ['z'],
  );
  for (const prefix of ['/mar_encoder/', '/llm_image_step/', '/mar_decoder/'])
    assert.ok(
      step.nodes.some((n) => n.name.startsWith(prefix)),
      `nodes under ${prefix}`,
    );
  assert.ok(step.nodes.every((n) => /^\/(mar_encoder|llm_image_step|mar_decoder)\//.test(n.name)));
  // Nothing duplicated: each module's weights appear once.
  const names = step.initializers.map((i) => i.name);
  assert.equal(new Set(names).size, names.length);
  assert.ok(names.includes('/llm_image_step/llm.model.norm.weight'));
});

for (const c of [
  { v: 5, k: 4, seed: 100 },
  { v: 0, k: 3, seed: 200 },
  { v: 12, k: 4, seed: 300 },
]) {
  test(`mar_step equals the three-graph chain (B = 2, V = ${c.v}, K = ${c.k}, P = ${P}, padded row)`, async () => {
    const feeds = stepFeeds(c);
    const fused = (await runModel(stepBytes, feeds)).z;
    assert.deepEqual([...fused.dims], [2, c.k, D]);
    const ref = await chain(feeds);
    const d = maxAbsDiff(fused.data as Float32Array, ref);
    assert.ok(d <= TOL, `max |fused − chain| = ${d}`);
    assert.ok(Math.max(...Array.from(ref, Math.abs)) > 0.1, 'z is not trivially small');
  });
}

test('the LLM path is wired: a different text cache changes z', async () => {
  const c = { v: 5, k: 4, seed: 100 };
  const a = (await runModel(stepBytes, stepFeeds(c))).z.data as Float32Array;
  const b = (await runModel(stepBytes, stepFeeds(c, 3))).z.data as Float32Array;
  assert.ok(maxAbsDiff(a, b) > 1e-3, 'z must depend on past_key_values');
});

test('the attention mask is wired: junk in row 1’s padded cache slots does not reach its z', async () => {
  const c = { v: 5, k: 4, seed: 100 };
  const clean = stepFeeds(c);
  const junk = stepFeeds(c);
  for (const [name, f] of Object.entries(junk)) {
    if (!name.startsWith('past_key_values.')) continue;
    const data = Float32Array.from(f.data as Float32Array); // [2,kv,P,hd]: row 1, slots Lu..P−1
    for (let hIdx = 0; hIdx < kvHeads; hIdx++)
      for (let p = lengths[1]; p < P; p++)
        data.fill(50, ((kvHeads + hIdx) * P + p) * headDim, ((kvHeads + hIdx) * P + p + 1) * headDim);
    junk[name] = f32(f.dims, data);
  }
  const a = (await runModel(stepBytes, clean)).z.data as Float32Array;
  const b = (await runModel(stepBytes, junk)).z.data as Float32Array;
  const half = a.length / 2;
  assert.ok(maxAbsDiff(a.subarray(half), b.subarray(half)) <= 1e-6, 'row 1 ignores its padding');
  assert.ok(maxAbsDiff(a.subarray(0, half), b.subarray(0, half)) <= 1e-6, 'row 0 untouched');
});
