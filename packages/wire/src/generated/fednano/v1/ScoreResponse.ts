// Original file: proto/fednano/v1/llm_host.proto

import type { DenseTensor as _fednano_v1_DenseTensor, DenseTensor__Output as _fednano_v1_DenseTensor__Output } from '../../fednano/v1/DenseTensor.js';

export interface ScoreResponse {
  'sampleLoss'?: (_fednano_v1_DenseTensor | null);
  /**
   * [batch, vocab_size] float
   */
  'logits'?: (_fednano_v1_DenseTensor | null);
}

export interface ScoreResponse__Output {
  'sampleLoss': (_fednano_v1_DenseTensor__Output | null);
  /**
   * [batch, vocab_size] float
   */
  'logits': (_fednano_v1_DenseTensor__Output | null);
}
