/**
 * Plain tensor values that cross the runtime boundary. The pipeline works with these, never with
 * onnxruntime's Tensor class, so `src/runtime/` stays the only importer of onnxruntime-node.
 */
export type TensorDType = 'float32' | 'int64' | 'int32' | 'uint8' | 'float16' | 'bool';

export type TensorArray = Float32Array | BigInt64Array | Int32Array | Uint8Array | Uint16Array;

export interface HostTensor {
  dtype: TensorDType;
  dims: readonly number[];
  data: TensorArray;
}

export const float32 = (dims: readonly number[], data: Float32Array): HostTensor => ({
  dtype: 'float32',
  dims,
  data,
});

export function int64(dims: readonly number[], values: ArrayLike<number> | BigInt64Array): HostTensor {
  const data =
    values instanceof BigInt64Array ? values : BigInt64Array.from(Array.from(values, (v) => BigInt(v)));
  return { dtype: 'int64', dims, data };
}

export function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}
