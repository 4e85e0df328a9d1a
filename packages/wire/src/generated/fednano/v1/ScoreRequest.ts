// Original file: proto/fednano/v1/llm_host.proto

import type { DenseTensor as _fednano_v1_DenseTensor, DenseTensor__Output as _fednano_v1_DenseTensor__Output } from '../../fednano/v1/DenseTensor.js';

export interface ScoreRequest {
  'inputsEmbeds'?: (_fednano_v1_DenseTensor | null);
  'targets'?: (_fednano_v1_DenseTensor | null);
  /**
   * One position per sample whose next-token logits are returned.
   */
  'positions'?: (number)[];
  'clientId'?: (string);
}

export interface ScoreRequest__Output {
  'inputsEmbeds': (_fednano_v1_DenseTensor__Output | null);
  'targets': (_fednano_v1_DenseTensor__Output | null);
  /**
   * One position per sample whose next-token logits are returned.
   */
  'positions': (number)[];
  'clientId': (string);
}
