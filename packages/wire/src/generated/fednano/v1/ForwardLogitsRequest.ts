// Original file: proto/fednano/v1/llm_host.proto

import type { DenseTensor as _fednano_v1_DenseTensor, DenseTensor__Output as _fednano_v1_DenseTensor__Output } from '../../fednano/v1/DenseTensor.js';

export interface ForwardLogitsRequest {
  /**
   * [batch, context_length, d_model] float
   */
  'inputsEmbeds'?: (_fednano_v1_DenseTensor | null);
  /**
   * [batch, answers] int64: the positions whose next-token logits are returned, -1 for an unused slot
   */
  'positions'?: (_fednano_v1_DenseTensor | null);
  'clientId'?: (string);
}

export interface ForwardLogitsRequest__Output {
  /**
   * [batch, context_length, d_model] float
   */
  'inputsEmbeds': (_fednano_v1_DenseTensor__Output | null);
  /**
   * [batch, answers] int64: the positions whose next-token logits are returned, -1 for an unused slot
   */
  'positions': (_fednano_v1_DenseTensor__Output | null);
  'clientId': (string);
}
