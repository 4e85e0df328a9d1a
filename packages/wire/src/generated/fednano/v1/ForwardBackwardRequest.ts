// Original file: proto/fednano/v1/llm_host.proto

import type { DenseTensor as _fednano_v1_DenseTensor, DenseTensor__Output as _fednano_v1_DenseTensor__Output } from '../../fednano/v1/DenseTensor.js';

export interface ForwardBackwardRequest {
  /**
   * [batch, context_length, d_model] float
   */
  'inputsEmbeds'?: (_fednano_v1_DenseTensor | null);
  /**
   * [batch, context_length] int64, -100 where nothing is predicted
   */
  'targets'?: (_fednano_v1_DenseTensor | null);
  /**
   * [batch] float: each sample's weight in the differentiated sum
   */
  'lossWeights'?: (_fednano_v1_DenseTensor | null);
  /**
   * Who asks, for logs and metrics (authenticated by certificate when mTLS is on).
   */
  'clientId'?: (string);
}

export interface ForwardBackwardRequest__Output {
  /**
   * [batch, context_length, d_model] float
   */
  'inputsEmbeds': (_fednano_v1_DenseTensor__Output | null);
  /**
   * [batch, context_length] int64, -100 where nothing is predicted
   */
  'targets': (_fednano_v1_DenseTensor__Output | null);
  /**
   * [batch] float: each sample's weight in the differentiated sum
   */
  'lossWeights': (_fednano_v1_DenseTensor__Output | null);
  /**
   * Who asks, for logs and metrics (authenticated by certificate when mTLS is on).
   */
  'clientId': (string);
}
