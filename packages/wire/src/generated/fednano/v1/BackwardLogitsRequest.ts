// Original file: proto/fednano/v1/llm_host.proto

import type { DenseTensor as _fednano_v1_DenseTensor, DenseTensor__Output as _fednano_v1_DenseTensor__Output } from '../../fednano/v1/DenseTensor.js';

export interface BackwardLogitsRequest {
  /**
   * The same inputs_embeds and positions as the ForwardLogits call.
   */
  'inputsEmbeds'?: (_fednano_v1_DenseTensor | null);
  'positions'?: (_fednano_v1_DenseTensor | null);
  /**
   * [batch, answers, vocab_size] float: d(loss)/d(logits), ignored in unused slots
   */
  'logitsGrad'?: (_fednano_v1_DenseTensor | null);
  'clientId'?: (string);
}

export interface BackwardLogitsRequest__Output {
  /**
   * The same inputs_embeds and positions as the ForwardLogits call.
   */
  'inputsEmbeds': (_fednano_v1_DenseTensor__Output | null);
  'positions': (_fednano_v1_DenseTensor__Output | null);
  /**
   * [batch, answers, vocab_size] float: d(loss)/d(logits), ignored in unused slots
   */
  'logitsGrad': (_fednano_v1_DenseTensor__Output | null);
  'clientId': (string);
}
