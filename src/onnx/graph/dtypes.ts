/** ONNX TensorProto.DataType numbers for the element types this project uses. */
export const ONNX_DTYPE = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
} as const;

export type GraphDType = keyof typeof ONNX_DTYPE;
