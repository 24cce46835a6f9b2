/**
 * The weight table behind the memory math (src/onnx/weight-budget.ts) against what really
 * happens: the initializers each exported graph holds, the bytes of the model directory, and the
 * graphs a serving model loads. A layout change that does not update the table fails here.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import onnxProto, { type onnx as OnnxTypes } from 'onnx-proto';
import { HarmonModel } from '../../src/harmon/harmon-model.ts';
import { HARMON_0_5B, HARMON_1_5B, HARMON_TINY } from '../../src/model/config.ts';
import { GRAPH_NAMES } from '../../src/model/manifest.ts';
import { readManifest } from '../../src/model/model-dir.ts';
import { expectedHarmonTensors } from '../../src/onnx/harmon-keys.ts';
import { graphWeightKeys, SERVING_GRAPHS, weightBudget } from '../../src/onnx/weight-budget.ts';
import { useTinyModel } from '../harmon/tiny-model-fixture.ts';

const { onnx } = onnxProto;
const tiny = useTinyModel();
const keys = expectedHarmonTensors(HARMON_TINY, { includeVae: true, vaePrefix: 'vae.' });

/** Checkpoint keys among a graph's initializers (subgraphs included), with their element counts. */
function heldWeights(path: string): Map<string, number> {
  const held = new Map<string, number>();
  const walk = (g: OnnxTypes.IGraphProto) => {
    for (const t of g.initializer ?? []) {
      // Fused graphs prefix a sub-module's names ("/mar_encoder/mar.z_proj.weight"); the VAE
      // graphs use kl16.ckpt's names, which the HF export holds under "vae.".
      const base = String(t.name).split('/').pop() ?? '';
      const key = keys.has(base) ? base : keys.has(`vae.${base}`) ? `vae.${base}` : undefined;
      if (key)
        held.set(
          key,
          (t.dims ?? []).reduce<number>((a, d) => a * Number(d), 1),
        );
    }
    for (const node of g.node ?? []) for (const a of node.attribute ?? []) if (a.g) walk(a.g);
  };
  walk(onnx.ModelProto.decode(readFileSync(path)).graph ?? {});
  return held;
}

test('every graph holds exactly the checkpoint tensors GRAPH_WEIGHTS lists for it', async () => {
  const m = await readManifest(tiny.fx.dir);
  const budget = weightBudget(HARMON_TINY, 'float32');
  for (const graph of GRAPH_NAMES) {
    const entry = m.graphs[graph];
    assert.ok(entry, graph);
    const held = heldWeights(join(tiny.fx.dir, entry.file));
    assert.deepEqual([...held.keys()].sort(), graphWeightKeys(HARMON_TINY, graph).sort(), graph);
    const params = [...held.values()].reduce((a, b) => a + b, 0);
    const predicted = budget.graphs.find((g) => g.graph === graph)?.params ?? 0;
    // Exact, the split pos tables included (buffer rows in lm, grid rows in pos_tables).
    assert.equal(params, predicted, graph);
  }
});

test("the model directory's bytes are its weight bytes plus little else", () => {
  const { dirBytes } = weightBudget(HARMON_TINY, 'float32');
  const files = readdirSync(tiny.fx.dir).filter((f) => f.endsWith('.onnx') || f.endsWith('.data'));
  const onDisk = files.reduce((s, f) => s + statSync(join(tiny.fx.dir, f)).size, 0);
  assert.ok(onDisk >= dirBytes && onDisk < dirBytes * 1.02 + 1e6, `${onDisk} on disk vs ${dirBytes}`);
});

test('a serving model loads exactly SERVING_GRAPHS', async () => {
  const model = await HarmonModel.open(tiny.fx.dir);
  try {
    assert.deepEqual(
      GRAPH_NAMES.filter((g) => model.runtime.has(g)),
      [...SERVING_GRAPHS],
    );
  } finally {
    await model.close();
  }
});

test('the real variants: every weight counted once is 3.08 GB (0.5B) and 10.24 GB (1.5B) in fp32', () => {
  const b05 = weightBudget(HARMON_0_5B, 'float32');
  const b15 = weightBudget(HARMON_1_5B, 'float16');
  assert.equal(Math.round((b05.uniqueParams * 4) / 1e7) / 100, 3.08);
  assert.equal(Math.round((b15.uniqueParams * 4) / 1e7) / 100, 10.24);
  // fp16 halves the directory, not what a loaded graph holds (its Casts fold to fp32 weights).
  assert.equal(b15.dirBytes, weightBudget(HARMON_1_5B, 'float32').dirBytes / 2);
  assert.equal(b15.residentBytes, weightBudget(HARMON_1_5B, 'float32').residentBytes);
});
