/**
 * lm.onnx as generate's image pass (spec §2.6 (b)–(f)): one run equals the old three-graph chain
 * mar_encoder → llm_image_step → mar_decoder (what model directories of format 1 ran unfused, and
 * their mar_step fused) on the same inputs: batch 2 with different visible/pred sets per row,
 * 0 < V < N, a text cache of length P = 6 whose second row is right-padded (mask holes, positions
 * from its own length), and the V = 0 first step. Also: the LLM path and the mask are wired.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Feed, f32, i64, maxAbsDiff, randomArray, runModel } from '../helpers/ort.ts';
import { D, headDim, IMG, kvHeads, layers, lmBytes, NB, old } from './lm-fixtures.ts';
import { randomIndexSets } from './mar-fixtures.ts';

const N = 16;
const P = 6;
const lengths = [6, 4]; // row 1: Lu = 4, slots 4..5 are padding
const EXACT = 0; // the same ops on the same values (measured bit-identical)

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
    input_ids: i64([2, s], Array(2 * s).fill(IMG)),
    tokens: f32([2, v, 16], randomArray(2 * v * 16, seed + 1, 1.5)),
    visible_idx: i64([2, v], visible.flat()),
    pred_idx: i64([2, k], pred.flat()),
    enc_pos_grid: f32([N, D], randomArray(N * D, seed + 2, 0.5)),
    dec_pos_grid: f32([N, D], randomArray(N * D, seed + 3, 0.5)),
    diff_pos_grid: f32([N, D], randomArray(N * D, seed + 4, 0.5)),
    attention_mask: i64([2, P + s], mask),
    position_ids: i64([2, s], positions),
    logits_at: i64([0, 2], []),
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

/** The old three-graph chain, as format-1 model directories ran it. */
async function chain(feeds: Record<string, Feed>): Promise<Float32Array> {
  const enc = await runModel(old.encoder, pick(feeds, ['tokens', 'visible_idx', 'enc_pos_grid']));
  const past = Object.keys(feeds).filter((n) => n.startsWith('past_key_values.'));
  const llm = await runModel(old.imageStep, {
    ...pick(feeds, ['attention_mask', 'position_ids', ...past]),
    inputs_embeds: f32([...enc.llm_in.dims], enc.llm_in.data as Float32Array),
  });
  const h = llm.last_hidden_state;
  const dec = await runModel(old.decoder, {
    ...pick(feeds, ['visible_idx', 'pred_idx', 'dec_pos_grid', 'diff_pos_grid']),
    x_enc: f32([...enc.x_enc.dims], enc.x_enc.data as Float32Array),
    llm_out: f32([...h.dims], h.data as Float32Array),
  });
  return dec.z.data as Float32Array;
}

const zOf = async (feeds: Record<string, Feed>) => (await runModel(lmBytes, feeds)).z;

for (const c of [
  { v: 5, k: 4, seed: 100 },
  { v: 0, k: 3, seed: 200 },
  { v: 12, k: 4, seed: 300 },
]) {
  test(`image pass equals the old three-graph chain (B = 2, V = ${c.v}, K = ${c.k}, P = ${P}, padded row)`, async () => {
    const feeds = stepFeeds(c);
    const z = await zOf(feeds);
    assert.deepEqual([...z.dims], [2, c.k, D]);
    const ref = await chain(feeds);
    const d = maxAbsDiff(z.data as Float32Array, ref);
    assert.ok(d <= EXACT, `max |lm − chain| = ${d}`);
    assert.ok(Math.max(...Array.from(ref, Math.abs)) > 0.1, 'z is not trivially small');
  });
}

test('the LLM path is wired: a different text cache changes z', async () => {
  const c = { v: 5, k: 4, seed: 100 };
  const a = (await zOf(stepFeeds(c))).data as Float32Array;
  const b = (await zOf(stepFeeds(c, 3))).data as Float32Array;
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
  const a = (await zOf(clean)).data as Float32Array;
  const b = (await zOf(junk)).data as Float32Array;
  const half = a.length / 2;
  assert.ok(maxAbsDiff(a.subarray(half), b.subarray(half)) <= 1e-6, 'row 1 ignores its padding');
  assert.ok(maxAbsDiff(a.subarray(0, half), b.subarray(0, half)) <= 1e-6, 'row 0 untouched');
});
