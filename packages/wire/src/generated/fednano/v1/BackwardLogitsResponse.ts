// Original file: proto/fednano/v1/llm_host.proto

import type { DenseTensor as _fednano_v1_DenseTensor, DenseTensor__Output as _fednano_v1_DenseTensor__Output } from '../../fednano/v1/DenseTensor.js';

export interface BackwardLogitsResponse {
  /**
   * [batch, context_length, d_model] float
   */
  'gradInputsEmbeds'?: (_fednano_v1_DenseTensor | null);
}

export interface BackwardLogitsResponse__Output {
  /**
   * [batch, context_length, d_model] float
   */
  'gradInputsEmbeds': (_fednano_v1_DenseTensor__Output | null);
}
