/**
 * External data that onnxruntime can load (issue #11): every graph of the tiny model exported
 * with ALL weights forced into the external file (no size threshold) loads in onnxruntime-node
 * and gives outputs identical to the same graph with everything inline. Shape constants must stay
 * inline — onnxruntime's shape inference cannot read them from the file ("Cannot parse data from
 * external tensors"), which made every converted 0.5B/1.5B checkpoint unloadable — and each
 * weight starts on a 4 KiB page so onnxruntime can map it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import onnxProto from 'onnx-proto';
import { HARMON_TINY } from '../../src/model/config.ts';
import { GRAPH_NAMES, type GraphName } from '../../src/model/manifest.ts';
import { IMAGE_TOKEN_ID } from '../../src/model/tokens.ts';
import { buildModelGraph } from '../../src/onnx/export-model.ts';
import { EXTERNAL_ALIGNMENT, saveModel, toModelBytes } from '../../src/onnx/graph/serialize.ts';
import { numelOf } from '../../src/onnx/weights/dtype.ts';
import { randomHarmonWeights } from '../../src/onnx/weights/random.ts';
import { type Feed, f32, i64, randomArray, runModel } from '../helpers/ort.ts';

const { onnx } = onnxProto;
const cfg = HARMON_TINY;
const weights = randomHarmonWeights(cfg, 3, { includeVae: true, vaePrefix: 'vae.' });
const dir = mkdtempSync(join(tmpdir(), 'external-data-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const D = cfg.mar.width;
const S = cfg.diffusion.samplingSteps;
const { layers, kvHeads, headDim } = cfg.llm;

/** Inputs that exercise each graph (the lm with its MAR encoder and decoder branches running). */
function feedsFor(name: GraphName): Record<string, Feed> {
  switch (name) {
    case 'lm': {
      const [v, k, n, s] = [3, 2, 16, 3 + 64];
      const past: Record<string, Feed> = {};
      for (let l = 0; l < layers; l++)
        for (const kv of ['key', 'value'])
          past[`past_key_values.${l}.${kv}`] = f32(
            [1, kvHeads, 2, headDim],
            randomArray(2 * kvHeads * headDim, l),
          );
      return {
        input_ids: i64([1, s], Array(s).fill(IMAGE_TOKEN_ID)),
        attention_mask: i64([1, 2 + s], Array(2 + s).fill(1)),
        position_ids: i64(
          [1, s],
          Array.from({ length: s }, (_, i) => 2 + i),
        ),
        ...past,
        tokens: f32([1, v, 16], randomArray(v * 16, 1)),
        visible_idx: i64([1, v], [2, 7, 11]),
        enc_pos_grid: f32([n, D], randomArray(n * D, 2, 0.5)),
        pred_idx: i64([1, k], [0, 5]),
        dec_pos_grid: f32([n, D], randomArray(n * D, 3, 0.5)),
        diff_pos_grid: f32([n, D], randomArray(n * D, 4, 0.5)),
        logits_at: i64([1, 2], [0, s - 1]),
      };
    }
    case 'diffusion_sampler': {
      const n = 2;
      return {
        c: f32([2 * n, D], randomArray(2 * n * D, 5)),
        x_T: f32([n, 16], randomArray(n * 16, 6)),
        noise: f32([S, n, 16], randomArray(S * n * 16, 7)),
        row_state: i64([2 * n], [0, 1, 0, 1]),
        uncond_row: i64([n], [2, 3]),
        cfg_scale: f32([n], [3, 3]),
        temperature: f32([n], [1, 1]),
      };
    }
    case 'vae_encoder':
      return { pixel_values: f32([1, 3, 32, 32], randomArray(3 * 32 * 32, 8)) };
    case 'vae_decoder':
      return { latents: f32([1, 2, 2, 16], randomArray(64, 9)) };
    case 'pos_tables':
      return {};
  }
}

for (const name of GRAPH_NAMES) {
  test(`${name}: every weight forced to external data loads and equals the inline export`, async () => {
    const g = buildModelGraph(name, cfg, weights, {
      weightDType: 'float32',
      vaePrefix: 'vae.',
      imageTokenId: IMAGE_TOKEN_ID,
    });
    const files = await saveModel(g, join(dir, `${name}.onnx`), { externalData: true, inlineBelowBytes: 0 });
    assert.equal(files.length, 2);

    // Layout: every weight in the file at a page-aligned offset, every shape constant inline.
    const model = onnx.ModelProto.decode(readFileSync(files[0]));
    const stored = new Map(model.graph!.initializer!.map((t) => [t.name!, t]));
    let external = 0;
    for (const init of g.initializers) {
      const t = stored.get(init.name);
      assert.ok(t, `${init.name} is stored`);
      const where = Object.fromEntries((t.externalData ?? []).map((e) => [e.key, e.value]));
      if (init.structural) {
        assert.equal(t.externalData?.length ?? 0, 0, `${init.name} (a constant) must stay inline`);
        continue;
      }
      assert.equal(t.dataLocation, onnx.TensorProto.DataLocation.EXTERNAL, `${init.name} is external`);
      assert.equal(Number(where.offset) % EXTERNAL_ALIGNMENT, 0, `${init.name} offset ${where.offset}`);
      assert.ok(Number(where.length) >= numelOf(init.dims), `${init.name} length`);
      external++;
    }
    assert.ok(external > 0 && statSync(files[1]).size > 0);

    const feeds = feedsFor(name);
    const fromFile = await runModel(files[0], feeds);
    const inline = await runModel(toModelBytes(g), feeds);
    assert.deepEqual(Object.keys(fromFile).sort(), Object.keys(inline).sort());
    for (const [k, v] of Object.entries(inline)) {
      assert.deepEqual([...fromFile[k].dims], [...v.dims], `${k} dims`);
      assert.deepEqual(
        Buffer.from(fromFile[k].data.buffer, fromFile[k].data.byteOffset, fromFile[k].data.byteLength),
        Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength),
        `${name}.${k} identical`,
      );
    }
  });
}
