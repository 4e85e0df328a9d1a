// Original file: proto/fednano/v1/llm_host.proto

/**
 * ONNX TensorProto.DataType numbering, restricted to what the API carries.
 */
export const DataType = {
  DATA_TYPE_UNSPECIFIED: 'DATA_TYPE_UNSPECIFIED',
  DATA_TYPE_FLOAT: 'DATA_TYPE_FLOAT',
  DATA_TYPE_INT64: 'DATA_TYPE_INT64',
} as const;

/**
 * ONNX TensorProto.DataType numbering, restricted to what the API carries.
 */
export type DataType =
  | 'DATA_TYPE_UNSPECIFIED'
  | 0
  | 'DATA_TYPE_FLOAT'
  | 1
  | 'DATA_TYPE_INT64'
  | 7

/**
 * ONNX TensorProto.DataType numbering, restricted to what the API carries.
 */
export type DataType__Output = typeof DataType[keyof typeof DataType]
