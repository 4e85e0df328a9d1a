// Original file: proto/fednano/v1/llm_host.proto

import type { DenseTensor as _fednano_v1_DenseTensor, DenseTensor__Output as _fednano_v1_DenseTensor__Output } from '../../fednano/v1/DenseTensor.js';

export interface ForwardLogitsResponse {
  /**
   * [batch, answers, vocab_size] float; all zeros in unused slots
   */
  'logits'?: (_fednano_v1_DenseTensor | null);
}

export interface ForwardLogitsResponse__Output {
  /**
   * [batch, answers, vocab_size] float; all zeros in unused slots
   */
  'logits': (_fednano_v1_DenseTensor__Output | null);
}
