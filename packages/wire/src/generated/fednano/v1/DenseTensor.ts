// Original file: proto/fednano/v1/llm_host.proto

import type { DataType as _fednano_v1_DataType, DataType__Output as _fednano_v1_DataType__Output } from '../../fednano/v1/DataType.js';
import type { Long } from '@grpc/proto-loader';

/**
 * A dense tensor: row-major, little-endian raw values.
 */
export interface DenseTensor {
  'dtype'?: (_fednano_v1_DataType);
  'dims'?: (number | string | Long)[];
  'data'?: (Buffer | Uint8Array | string);
}

/**
 * A dense tensor: row-major, little-endian raw values.
 */
export interface DenseTensor__Output {
  'dtype': (_fednano_v1_DataType__Output);
  'dims': (number)[];
  'data': (Buffer);
}
