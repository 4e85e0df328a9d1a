// Original file: proto/fednano/v1/llm_host.proto

import type { DenseTensor as _fednano_v1_DenseTensor, DenseTensor__Output as _fednano_v1_DenseTensor__Output } from '../../fednano/v1/DenseTensor.js';

export interface ForwardBackwardResponse {
  /**
   * [batch] float: summed next-token NLL over each sample's targets
   */
  'sampleLoss'?: (_fednano_v1_DenseTensor | null);
  /**
   * [batch, context_length, d_model] float
   */
  'gradInputsEmbeds'?: (_fednano_v1_DenseTensor | null);
}

export interface ForwardBackwardResponse__Output {
  /**
   * [batch] float: summed next-token NLL over each sample's targets
   */
  'sampleLoss': (_fednano_v1_DenseTensor__Output | null);
  /**
   * [batch, context_length, d_model] float
   */
  'gradInputsEmbeds': (_fednano_v1_DenseTensor__Output | null);
}
