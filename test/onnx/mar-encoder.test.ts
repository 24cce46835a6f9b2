import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HARMON_TINY } from '../../src/model/config.ts';
import { buildMarEncoder } from '../../src/onnx/builders/mar-encoder.ts';
import { toModelBytes } from '../../src/onnx/graph/serialize.ts';
import type { WeightSource } from '../../src/onnx/weights/types.ts';
import { f32, i64, maxAbsDiff, randomArray, runModel } from '../helpers/ort.ts';
import { type MarVariant, marEncode } from '../reference/mar.ts';
import { marWeights, randomIndexSets, relativeDiff } from './mar-fixtures.ts';

const cfg = HARMON_TINY;
const D = cfg.mar.width;
const H = cfg.llm.hidden;
const C = cfg.mar.tokenChannels;
const TOL = 1e-4;

interface Case {
  visibleIdx: number[][];
  tokens: Float32Array;
  encPosGrid: Float32Array;
}

function makeCase(batch: number, v: number, n: number, seed: number, inputScale = 1): Case {
  return {
    visibleIdx:
      v === n
        ? Array.from({ length: batch }, () => [...Array(n).keys()])
        : randomIndexSets(batch, v, n, seed),
    tokens: randomArray(batch * v * C, seed + 1, inputScale),
    encPosGrid: randomArray(n * D, seed + 2, 0.5 * inputScale),
  };
}

async function runEncoder(model: Uint8Array, c: Case) {
  const B = c.visibleIdx.length;
  const V = c.visibleIdx[0].length;
  const out = await runModel(model, {
    tokens: f32([B, V, C], c.tokens),
    visible_idx: i64([B, V], c.visibleIdx.flat()),
    enc_pos_grid: f32([c.encPosGrid.length / D, D], c.encPosGrid),
  });
  return { xEnc: out.x_enc, llmIn: out.llm_in };
}

async function check(weights: WeightSource, c: Case, variant: MarVariant = {}) {
  const model = toModelBytes(buildMarEncoder(cfg, weights));
  const got = await runEncoder(model, c);
  const ref = marEncode(cfg, weights, c, variant);
  return { got, ref };
}

describe('mar_encoder graph', () => {
  const weights = marWeights(cfg, 1);

  test('batch 2, different visible sets, V = 5 of N = 16 (4×4 grid) matches the reference', async () => {
    const c = makeCase(2, 5, 16, 10);
    assert.notDeepEqual(c.visibleIdx[0], c.visibleIdx[1]);
    const { got, ref } = await check(weights, c);
    assert.deepEqual([...got.xEnc.dims], [2, 64 + 5, D]);
    assert.deepEqual([...got.llmIn.dims], [2, 5 + 64, H]);
    assert.ok(maxAbsDiff(got.xEnc.data as Float32Array, ref.xEnc) <= TOL);
    assert.ok(maxAbsDiff(got.llmIn.data as Float32Array, ref.llmIn) <= TOL);
  });

  test('V = 0 (step 0): only the 64 buffer slots, rotation is the identity', async () => {
    const c = makeCase(2, 0, 16, 20);
    const { got, ref } = await check(weights, c);
    assert.deepEqual([...got.xEnc.dims], [2, 64, D]);
    assert.deepEqual([...got.llmIn.dims], [2, 64, H]);
    assert.ok(maxAbsDiff(got.xEnc.data as Float32Array, ref.xEnc) <= TOL);
    assert.ok(maxAbsDiff(got.llmIn.data as Float32Array, ref.llmIn) <= TOL);
  });

  test('describe: V = N = 64 (8×8 grid), batch 1', async () => {
    const c = makeCase(1, 64, 64, 30);
    const { got, ref } = await check(weights, c);
    assert.deepEqual([...got.llmIn.dims], [1, 128, H]);
    assert.ok(maxAbsDiff(got.xEnc.data as Float32Array, ref.xEnc) <= TOL);
    assert.ok(maxAbsDiff(got.llmIn.data as Float32Array, ref.llmIn) <= TOL);
  });

  test('pitfalls: qkv order, GELU variant and rotation direction each leave the tolerance', async () => {
    const c = makeCase(2, 7, 16, 40);
    const model = toModelBytes(buildMarEncoder(cfg, weights));
    const got = await runEncoder(model, c);
    const xe = got.xEnc.data as Float32Array;
    const li = got.llmIn.data as Float32Array;
    assert.ok(maxAbsDiff(xe, marEncode(cfg, weights, c).xEnc) <= TOL);
    const interleaved = marEncode(cfg, weights, c, { qkv: 'interleaved' });
    assert.ok(maxAbsDiff(xe, interleaved.xEnc) > 100 * TOL, 'interleaved qkv must be detectable');
    const tanh = marEncode(cfg, weights, c, { gelu: 'tanh' });
    assert.ok(maxAbsDiff(xe, tanh.xEnc) > 3 * TOL, `tanh GELU diff ${maxAbsDiff(xe, tanh.xEnc)}`);
    // Rotation: x_enc is unaffected, llm_in is not (V = 7 ≠ 64, so the directions differ).
    for (const rotation of ['reversed', 'none'] as const) {
      const wrong = marEncode(cfg, weights, c, { rotation });
      assert.ok(maxAbsDiff(xe, wrong.xEnc) <= TOL);
      assert.ok(maxAbsDiff(li, wrong.llmIn) > 100 * TOL, `${rotation} rotation must be detectable`);
    }
  });

  test('LayerNorm eps 1e-6, not 1e-5, on small-variance inputs', async () => {
    // Tiny z_proj / pos / fake_latent make z_proj_ln's input variance ~1e-6, where eps dominates.
    const small = 3e-3;
    const w = marWeights(cfg, 2, {
      scale: {
        'mar.z_proj.weight': small,
        'mar.z_proj.bias': small,
        'mar.fake_latent': small,
        'mar.encoder_pos_embed_learned': small,
      },
    });
    const c = makeCase(2, 6, 16, 50, small);
    const { got, ref } = await check(w, c);
    const xe = got.xEnc.data as Float32Array;
    assert.ok(maxAbsDiff(xe, ref.xEnc) <= TOL);
    const eps5 = marEncode(cfg, w, c, { lnEps: 1e-5 });
    assert.ok(maxAbsDiff(xe, eps5.xEnc) > 100 * TOL, 'eps 1e-5 must be detectable');
  });

  test('fp16 weights stay within 2e-2 relative', async () => {
    const c = makeCase(2, 5, 16, 60);
    const g = buildMarEncoder(cfg, weights, { weightDType: 'float16' });
    assert.ok(
      g.initializers.some((i) => i.name === 'mar.encoder_blocks.0.attn.qkv.weight' && i.dtype === 'float16'),
    );
    const got = await runEncoder(toModelBytes(g), c);
    const ref = marEncode(cfg, weights, c);
    assert.ok(relativeDiff(got.xEnc.data as Float32Array, ref.xEnc) <= 2e-2);
    assert.ok(relativeDiff(got.llmIn.data as Float32Array, ref.llmIn) <= 2e-2);
  });

  test('interface and naming follow spec §6.4 and the checkpoint keys', () => {
    const g = buildMarEncoder(cfg, weights);
    assert.deepEqual(
      g.inputs.map((i) => i.name),
      ['tokens', 'visible_idx', 'enc_pos_grid'],
    );
    assert.deepEqual(
      g.outputs.map((o) => o.name),
      ['x_enc', 'llm_in'],
    );
    assert.ok(g.nodes.some((n) => n.name === '/mar/encoder_blocks.1/attn/qkv/MatMul'));
    assert.ok(g.initializers.some((i) => i.name === 'proj_in.2.weight'));
    assert.ok(!g.initializers.some((i) => i.name.startsWith('mar.decoder')));
  });
});
