import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HARMON_TINY } from '../../src/model/config.ts';
import { buildMarDecoder } from '../../src/onnx/builders/mar-decoder.ts';
import { buildMarEncoder } from '../../src/onnx/builders/mar-encoder.ts';
import { toModelBytes } from '../../src/onnx/graph/serialize.ts';
import type { WeightSource } from '../../src/onnx/weights/types.ts';
import { f32, i64, maxAbsDiff, randomArray, runModel } from '../helpers/ort.ts';
import { type MarDecodeInputs, type MarVariant, marDecode } from '../reference/mar.ts';
import { marWeights, randomIndexSets, relativeDiff } from './mar-fixtures.ts';

const cfg = HARMON_TINY;
const D = cfg.mar.width;
const H = cfg.llm.hidden;
const NB = cfg.mar.buffer;
const TOL = 1e-4;

/** Random decoder inputs; pred_idx is disjoint from visible_idx per row, as in a real step. */
function makeCase(
  batch: number,
  v: number,
  k: number,
  n: number,
  seed: number,
  inputScale = 1,
): MarDecodeInputs {
  const order = randomIndexSets(batch, n, n, seed).map((all, b) => {
    const r = randomArray(n, seed + 100 + b);
    return all.sort((x, y) => r[x] - r[y]);
  });
  return {
    xEnc: randomArray(batch * (NB + v) * D, seed + 1, inputScale),
    llmOut: randomArray(batch * (v + NB) * H, seed + 2),
    visibleIdx: order.map((o) => o.slice(0, v).sort((x, y) => x - y)),
    predIdx: order.map((o) => o.slice(v, v + k).sort((x, y) => x - y)),
    decPosGrid: randomArray(n * D, seed + 3, 0.5 * inputScale),
    diffPosGrid: randomArray(n * D, seed + 4, 0.5),
  };
}

async function runDecoder(model: Uint8Array, c: MarDecodeInputs) {
  const B = c.visibleIdx.length;
  const V = c.visibleIdx[0].length;
  const K = c.predIdx[0].length;
  const N = c.decPosGrid.length / D;
  const out = await runModel(model, {
    x_enc: f32([B, NB + V, D], Float32Array.from(c.xEnc)),
    llm_out: f32([B, V + NB, H], Float32Array.from(c.llmOut)),
    visible_idx: i64([B, V], c.visibleIdx.flat()),
    pred_idx: i64([B, K], c.predIdx.flat()),
    dec_pos_grid: f32([N, D], Float32Array.from(c.decPosGrid)),
    diff_pos_grid: f32([N, D], Float32Array.from(c.diffPosGrid)),
  });
  return out.z;
}

async function check(weights: WeightSource, c: MarDecodeInputs, variant: MarVariant = {}) {
  const z = await runDecoder(toModelBytes(buildMarDecoder(cfg, weights)), c);
  return { z, ref: marDecode(cfg, weights, c, variant) };
}

describe('mar_decoder graph', () => {
  const weights = marWeights(cfg, 3);

  test('batch 2, different visible/pred sets, V = 5, K = 4, N = 16 matches the reference', async () => {
    const c = makeCase(2, 5, 4, 16, 10);
    assert.notDeepEqual(c.visibleIdx[0], c.visibleIdx[1]);
    const { z, ref } = await check(weights, c);
    assert.deepEqual([...z.dims], [2, 4, D]);
    assert.ok(maxAbsDiff(z.data as Float32Array, ref) <= TOL);
  });

  test('V = 0 (step 0) with K = 3, and the last step predicting every masked token', async () => {
    const step0 = makeCase(2, 0, 3, 16, 20);
    const a = await check(weights, step0);
    assert.deepEqual([...a.z.dims], [2, 3, D]);
    assert.ok(maxAbsDiff(a.z.data as Float32Array, a.ref) <= TOL);
    const last = makeCase(2, 10, 6, 16, 21);
    const b = await check(weights, last);
    assert.ok(maxAbsDiff(b.z.data as Float32Array, b.ref) <= TOL);
  });

  test('a 64-token (8×8) grid works without rebuilding: N comes from dec_pos_grid', async () => {
    const c = makeCase(2, 20, 5, 64, 30);
    const { z, ref } = await check(weights, c);
    assert.deepEqual([...z.dims], [2, 5, D]);
    assert.ok(maxAbsDiff(z.data as Float32Array, ref) <= TOL);
  });

  test('pitfalls: rotation direction, qkv order and GELU variant each leave the tolerance', async () => {
    const c = makeCase(2, 7, 5, 16, 40);
    const z = (await runDecoder(toModelBytes(buildMarDecoder(cfg, weights)), c)).data as Float32Array;
    assert.ok(maxAbsDiff(z, marDecode(cfg, weights, c)) <= TOL);
    for (const rotation of ['reversed', 'none'] as const) {
      const d = maxAbsDiff(z, marDecode(cfg, weights, c, { rotation }));
      assert.ok(d > 100 * TOL, `${rotation} rotation must be detectable (diff ${d})`);
    }
    const dq = maxAbsDiff(z, marDecode(cfg, weights, c, { qkv: 'interleaved' }));
    assert.ok(dq > 100 * TOL, `interleaved qkv must be detectable (diff ${dq})`);
    const dg = maxAbsDiff(z, marDecode(cfg, weights, c, { gelu: 'tanh' }));
    assert.ok(dg > 3 * TOL, `tanh GELU must be detectable (diff ${dg})`);
  });

  test('LayerNorm eps 1e-6, not 1e-5, on small-variance inputs', async () => {
    // A tiny residual branch, decoder_embed, mask_token and pos rows make the first decoder
    // block's norm1 see variance ~1e-6, where eps 1e-5 vs 1e-6 changes the output by O(1).
    const small = 3e-3;
    const w = marWeights(cfg, 4, {
      scale: {
        'proj_out.2.weight': small,
        'proj_out.2.bias': small,
        'mar.decoder_embed.bias': small,
        'mar.mask_token': small,
        'mar.decoder_pos_embed_learned': small,
      },
    });
    const c = makeCase(2, 6, 4, 16, 50, small);
    const { z, ref } = await check(w, c);
    const zd = z.data as Float32Array;
    assert.ok(maxAbsDiff(zd, ref) <= TOL);
    const d = maxAbsDiff(zd, marDecode(cfg, w, c, { lnEps: 1e-5 }));
    assert.ok(d > 100 * TOL, `eps 1e-5 must be detectable (diff ${d})`);
  });

  test('fp16 weights stay within 2e-2 relative', async () => {
    const c = makeCase(2, 5, 4, 16, 60);
    const g = buildMarDecoder(cfg, weights, { weightDType: 'float16' });
    assert.ok(
      g.initializers.some((i) => i.name === 'mar.decoder_blocks.0.attn.qkv.weight' && i.dtype === 'float16'),
    );
    const z = await runDecoder(toModelBytes(g), c);
    assert.ok(relativeDiff(z.data as Float32Array, marDecode(cfg, weights, c)) <= 2e-2);
  });

  test('encoder → decoder chain: the decoder consumes the encoder graph outputs as-is', async () => {
    const c = makeCase(2, 5, 4, 16, 70);
    const enc = await runModel(toModelBytes(buildMarEncoder(cfg, weights)), {
      tokens: f32([2, 5, 16], randomArray(2 * 5 * 16, 71)),
      visible_idx: i64([2, 5], c.visibleIdx.flat()),
      enc_pos_grid: f32([16, D], randomArray(16 * D, 72, 0.5)),
    });
    // llm_in stands in for the LLM output (LLM order): shapes and layouts of the two graphs line up.
    const chained = { ...c, xEnc: enc.x_enc.data as Float32Array, llmOut: enc.llm_in.data as Float32Array };
    const { z, ref } = await check(weights, chained);
    assert.ok(maxAbsDiff(z.data as Float32Array, ref) <= TOL);
  });

  test('interface follows spec §6.7', () => {
    const g = buildMarDecoder(cfg, weights);
    assert.deepEqual(
      g.inputs.map((i) => i.name),
      ['x_enc', 'llm_out', 'visible_idx', 'pred_idx', 'dec_pos_grid', 'diff_pos_grid'],
    );
    assert.deepEqual(
      g.outputs.map((o) => o.name),
      ['z'],
    );
    assert.ok(g.nodes.some((n) => n.name === '/mar/decoder_blocks.0/mlp/fc1/MatMul'));
    assert.ok(!g.initializers.some((i) => i.name.startsWith('mar.encoder')));
  });
});
