/**
 * What every module builder receives: the graph being built, the weights and the storage dtype.
 * Builders stay pure functions of (config, weights) -> graph; only load/save touch disk.
 */
import { AppError } from '../../shared/errors.ts';
import { numelOf, toFloat16Array } from '../weights/dtype.ts';
import type { WeightSource } from '../weights/types.ts';
import type { GraphBuilder, TensorData } from './graph-builder.ts';

export type WeightDType = 'float32' | 'float16';

export interface BuildContext {
  g: GraphBuilder;
  weights: WeightSource;
  /**
   * Storage dtype of weight initializers. fp16 halves the files; a Cast to fp32 follows each
   * weight so activations stay fp32 (the spec warns against pure-fp16 Qwen2 and an fp16 diffusion
   * output layer). onnxruntime folds these casts at session creation.
   */
  weightDType: WeightDType;
  /** Prefix prepended to checkpoint key names, e.g. 'vae.' for HF-format checkpoints. */
  keyPrefix?: string;
}

export function weightEntry(ctx: BuildContext, key: string) {
  const full = (ctx.keyPrefix ?? '') + key;
  const e = ctx.weights.get(full);
  if (!e) throw new AppError('WEIGHTS_INVALID', `missing tensor ${full}`, { details: { missing: [full] } });
  return e;
}

/**
 * Adds a weight initializer named after its checkpoint key and returns the fp32 value to use.
 * `transform` reshapes/transposes the stored data lazily (e.g. Linear [out,in] -> [in,out]).
 */
export function weight(
  ctx: BuildContext,
  key: string,
  dims: number[],
  transform?: (data: Float32Array) => Float32Array,
): string {
  const transformGiven = transform !== undefined;
  transform ??= (d) => d;
  const entry = weightEntry(ctx, key);
  const expected = numelOf(dims);
  const stored = numelOf(entry.shape);
  const misshaped = (got: number) =>
    new AppError(
      'WEIGHTS_INVALID',
      `tensor ${entry.name} has shape [${entry.shape}] (${got} values), expected ${expected}`,
      {
        details: { misshaped: [entry.name] },
      },
    );
  // Without a transform the stored tensor must fill the initializer exactly; a transform (slice,
  // transpose) may change the count, so its result is checked when it is read.
  if (!transformGiven && expected !== stored) throw misshaped(stored);
  const read = (): Float32Array => {
    const out = transform(entry.read());
    if (out.length !== expected) throw misshaped(out.length);
    return out;
  };
  if (ctx.weightDType === 'float32') return ctx.g.initializer(key, 'float32', dims, read);
  const init = ctx.g.initializer(key, 'float16', dims, (): TensorData => toFloat16Array(read()));
  // In the root graph even when the weight is read inside an If/Loop body: onnxruntime folds the
  // Cast into one fp32 initializer at load, which the body then reads from the outer scope.
  return ctx.g.rootGraph.op1('Cast', [init], { name: `/weights/${key}/Cast`, attrs: { to: 1 } });
}

/** [rows, cols] row-major -> [cols, rows]. */
export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}
