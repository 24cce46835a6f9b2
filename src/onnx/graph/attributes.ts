/**
 * Attribute values. A bare number is an INT and a number[] is INTS; floats must be wrapped with
 * `float()`/`floats()` because `epsilon: 1` vs `alpha: 1.0` cannot be told apart in JS and a
 * wrong attribute type makes onnxruntime reject the model at load time.
 */
export class FloatAttr {
  constructor(readonly value: number) {}
}
export class FloatsAttr {
  constructor(readonly value: number[]) {}
}
export class TensorAttr {
  constructor(
    readonly dtype: 'float32' | 'int64' | 'int32',
    readonly dims: number[],
    readonly data: Float32Array | BigInt64Array | Int32Array,
  ) {}
}

export const float = (v: number) => new FloatAttr(v);
export const floats = (v: number[]) => new FloatsAttr(v);
