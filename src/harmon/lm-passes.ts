/**
 * The two `lm` passes of generate over a batch's rows (batch-plan.ts), each in row chunks under
 * the run budget of run-chunks.ts: the text prefill, whose KV cache is kept for the whole loop
 * (rows of jobs that leave are sliced out), and one MAR step's image pass → z [B, K, D].
 */

import { rowsPerRun } from '../model/run-budget.ts';
import type { HostTensor } from '../runtime/tensors.ts';
import { int64 } from '../runtime/tensors.ts';
import { type BatchRow, C, type Layout, layoutPrompt } from './batch-plan.ts';
import { emptyPast, type HarmonModel, outF32, presentAsPast, presentNames } from './harmon-model.ts';
import { imageSlotIds, lmFeeds } from './lm-feeds.ts';
import { gatherVisible, imagePassFeeds, rowIndices, type StepIndices } from './mar-batch.ts';
import { concatRows, pickRows, rowChunks, rowView, sliceRows, takeRows } from './run-chunks.ts';

/** The text side of the batch: rows (their jobs), padded length L, per-row lengths/mask, cache. */
export interface TextState {
  rows: BatchRow[];
  L: number;
  lengths: number[];
  /** [B, L], 1 for real tokens. */
  mask: Uint8Array;
  /** past_key_values.{l}.{key,value} [B, kv, L, hd]. */
  cache: Record<string, HostTensor>;
}

/**
 * Text prefill (§2.4): all-ones mask and positions 0..L−1 reproduce the reference's None/None;
 * right padding means no real token attends to a pad, so a row's cache does not depend on L.
 */
export async function prefill(model: HarmonModel, rows: BatchRow[], budget: number): Promise<TextState> {
  const cfg = model.config;
  const p = layoutPrompt(rows);
  const L = p.maxLength;
  const parts: Record<string, HostTensor>[] = [];
  for (const [s, e] of rowChunks(p.batch, rowsPerRun(budget, L))) {
    const R = e - s;
    const feeds = lmFeeds(cfg, {
      inputIds: int64([R, L], p.ids.subarray(s * L, e * L)),
      attentionMask: { dtype: 'int64', dims: [R, L], data: new BigInt64Array(R * L).fill(1n) },
      positionIds: {
        dtype: 'int64',
        dims: [R, L],
        data: BigInt64Array.from({ length: R * L }, (_, i) => BigInt(i % L)),
      },
      past: emptyPast(cfg.llm, R),
    });
    const out = await model.runtime.run('lm', feeds, presentNames(cfg.llm.layers));
    parts.push(presentAsPast(out, cfg.llm.layers));
  }
  const cache = Object.fromEntries(
    Object.keys(parts[0]).map((name) => [name, concatRows(parts.map((x) => x[name]))]),
  );
  return { rows, L, lengths: p.lengths, mask: p.textMask, cache };
}

/** The text state without the rows of jobs that have left the batch (order kept). */
export function keepLiveRows(t: TextState): TextState {
  const keep = t.rows.flatMap((r, i) => (r.job.outcome ? [] : [i]));
  if (keep.length === t.rows.length) return t;
  return {
    rows: keep.map((i) => t.rows[i]),
    L: t.L,
    lengths: keep.map((i) => t.lengths[i]),
    mask: pickRows(t.mask, t.L, keep, (n) => new Uint8Array(n)),
    cache: Object.fromEntries(Object.entries(t.cache).map(([name, x]) => [name, takeRows(x, keep)])),
  };
}

/**
 * One MAR step's lm run(s) (§2.6 b–f) for the layout's rows → z [B, K, D], rows in layout order.
 * Returns the image-pass positions too (the step-level debug hook reports them).
 */
export async function imagePass(
  model: HarmonModel,
  text: TextState,
  layout: Layout,
  idx: StepIndices,
  side: number,
  budget: number,
) {
  const cfg = model.config;
  const { rows, images } = layout;
  const N = side * side;
  const B = rows.length;
  const V = idx.visible[0].length;
  const K = idx.predicted[0].length;
  const S = V + cfg.mar.buffer;
  const L = text.L;
  const pass = imagePassFeeds(text.mask, text.lengths, L, S);
  const rowVisible = rows.map((r) => idx.visible[r.image]);
  const tokens = gatherVisible(
    rows.map((r) => images[r.image].tokens),
    rowVisible,
    C,
  );
  const visible = rowIndices(rowVisible);
  const predicted = rowIndices(rows.map((r) => idx.predicted[r.image]));
  const grids = model.gridTables(side, side);
  const grid = (data: Float32Array): HostTensor => ({ dtype: 'float32', dims: [N, cfg.mar.width], data });
  const parts: HostTensor[] = [];
  // A row costs its text cache plus buffer + N tokens whatever the step (the MAR decoder's
  // canvas): run-budget.ts.
  for (const [s, e] of rowChunks(B, rowsPerRun(budget, L + N + cfg.mar.buffer))) {
    const R = e - s;
    const feeds = lmFeeds(cfg, {
      inputIds: imageSlotIds(model.manifest.tokenizer.imageTokenId, R, S),
      attentionMask: { dtype: 'int64', dims: [R, L + S], data: rowView(pass.mask, B, s, e) },
      positionIds: { dtype: 'int64', dims: [R, S], data: rowView(pass.positions, B, s, e) },
      past: Object.fromEntries(Object.entries(text.cache).map(([name, x]) => [name, sliceRows(x, s, e)])),
      image: {
        tokens: { dtype: 'float32', dims: [R, V, C], data: rowView(tokens, B, s, e) },
        visibleIdx: { dtype: 'int64', dims: [R, V], data: rowView(visible, B, s, e) },
        encPosGrid: grid(grids.enc),
      },
      predict: {
        predIdx: { dtype: 'int64', dims: [R, K], data: rowView(predicted, B, s, e) },
        decPosGrid: grid(grids.dec),
        diffPosGrid: grid(grids.diff),
      },
    });
    parts.push(outF32(await model.runtime.run('lm', feeds, ['z']), 'z', 'lm'));
  }
  return { z: concatRows(parts), positions: pass.positions, S };
}
