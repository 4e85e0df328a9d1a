// Original file: proto/fednano/v1/llm_host.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { BackwardLogitsRequest as _fednano_v1_BackwardLogitsRequest, BackwardLogitsRequest__Output as _fednano_v1_BackwardLogitsRequest__Output } from '../../fednano/v1/BackwardLogitsRequest.js';
import type { BackwardLogitsResponse as _fednano_v1_BackwardLogitsResponse, BackwardLogitsResponse__Output as _fednano_v1_BackwardLogitsResponse__Output } from '../../fednano/v1/BackwardLogitsResponse.js';
import type { ForwardBackwardRequest as _fednano_v1_ForwardBackwardRequest, ForwardBackwardRequest__Output as _fednano_v1_ForwardBackwardRequest__Output } from '../../fednano/v1/ForwardBackwardRequest.js';
import type { ForwardBackwardResponse as _fednano_v1_ForwardBackwardResponse, ForwardBackwardResponse__Output as _fednano_v1_ForwardBackwardResponse__Output } from '../../fednano/v1/ForwardBackwardResponse.js';
import type { ForwardLogitsRequest as _fednano_v1_ForwardLogitsRequest, ForwardLogitsRequest__Output as _fednano_v1_ForwardLogitsRequest__Output } from '../../fednano/v1/ForwardLogitsRequest.js';
import type { ForwardLogitsResponse as _fednano_v1_ForwardLogitsResponse, ForwardLogitsResponse__Output as _fednano_v1_ForwardLogitsResponse__Output } from '../../fednano/v1/ForwardLogitsResponse.js';
import type { InfoRequest as _fednano_v1_InfoRequest, InfoRequest__Output as _fednano_v1_InfoRequest__Output } from '../../fednano/v1/InfoRequest.js';
import type { InfoResponse as _fednano_v1_InfoResponse, InfoResponse__Output as _fednano_v1_InfoResponse__Output } from '../../fednano/v1/InfoResponse.js';
import type { ScoreRequest as _fednano_v1_ScoreRequest, ScoreRequest__Output as _fednano_v1_ScoreRequest__Output } from '../../fednano/v1/ScoreRequest.js';
import type { ScoreResponse as _fednano_v1_ScoreResponse, ScoreResponse__Output as _fednano_v1_ScoreResponse__Output } from '../../fednano/v1/ScoreResponse.js';

export interface LlmHostClient extends grpc.Client {
  /**
   * Label-private split training, step 2: d(sum logits_grad * logits)/d(inputs_embeds). The host recomputes the
   * forward pass instead of keeping state between the two calls, so either may be retried, batched or sent to a
   * restarted host.
   */
  BackwardLogits(argument: _fednano_v1_BackwardLogitsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_BackwardLogitsResponse__Output>): grpc.ClientUnaryCall;
  BackwardLogits(argument: _fednano_v1_BackwardLogitsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_fednano_v1_BackwardLogitsResponse__Output>): grpc.ClientUnaryCall;
  BackwardLogits(argument: _fednano_v1_BackwardLogitsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_BackwardLogitsResponse__Output>): grpc.ClientUnaryCall;
  BackwardLogits(argument: _fednano_v1_BackwardLogitsRequest, callback: grpc.requestCallback<_fednano_v1_BackwardLogitsResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Label-private split training, step 2: d(sum logits_grad * logits)/d(inputs_embeds). The host recomputes the
   * forward pass instead of keeping state between the two calls, so either may be retried, batched or sent to a
   * restarted host.
   */
  backwardLogits(argument: _fednano_v1_BackwardLogitsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_BackwardLogitsResponse__Output>): grpc.ClientUnaryCall;
  backwardLogits(argument: _fednano_v1_BackwardLogitsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_fednano_v1_BackwardLogitsResponse__Output>): grpc.ClientUnaryCall;
  backwardLogits(argument: _fednano_v1_BackwardLogitsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_BackwardLogitsResponse__Output>): grpc.ClientUnaryCall;
  backwardLogits(argument: _fednano_v1_BackwardLogitsRequest, callback: grpc.requestCallback<_fednano_v1_BackwardLogitsResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Forward and backward pass: sample losses and d(sum_b w_b * loss_b)/d(inputs_embeds).
   */
  ForwardBackward(argument: _fednano_v1_ForwardBackwardRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_ForwardBackwardResponse__Output>): grpc.ClientUnaryCall;
  ForwardBackward(argument: _fednano_v1_ForwardBackwardRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_fednano_v1_ForwardBackwardResponse__Output>): grpc.ClientUnaryCall;
  ForwardBackward(argument: _fednano_v1_ForwardBackwardRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_ForwardBackwardResponse__Output>): grpc.ClientUnaryCall;
  ForwardBackward(argument: _fednano_v1_ForwardBackwardRequest, callback: grpc.requestCallback<_fednano_v1_ForwardBackwardResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Forward and backward pass: sample losses and d(sum_b w_b * loss_b)/d(inputs_embeds).
   */
  forwardBackward(argument: _fednano_v1_ForwardBackwardRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_ForwardBackwardResponse__Output>): grpc.ClientUnaryCall;
  forwardBackward(argument: _fednano_v1_ForwardBackwardRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_fednano_v1_ForwardBackwardResponse__Output>): grpc.ClientUnaryCall;
  forwardBackward(argument: _fednano_v1_ForwardBackwardRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_ForwardBackwardResponse__Output>): grpc.ClientUnaryCall;
  forwardBackward(argument: _fednano_v1_ForwardBackwardRequest, callback: grpc.requestCallback<_fednano_v1_ForwardBackwardResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Label-private split training, step 1: the LM's logits at the answer positions only. No targets are sent; the
   * client computes its loss and d(loss)/d(logits) from them itself.
   */
  ForwardLogits(argument: _fednano_v1_ForwardLogitsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_ForwardLogitsResponse__Output>): grpc.ClientUnaryCall;
  ForwardLogits(argument: _fednano_v1_ForwardLogitsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_fednano_v1_ForwardLogitsResponse__Output>): grpc.ClientUnaryCall;
  ForwardLogits(argument: _fednano_v1_ForwardLogitsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_ForwardLogitsResponse__Output>): grpc.ClientUnaryCall;
  ForwardLogits(argument: _fednano_v1_ForwardLogitsRequest, callback: grpc.requestCallback<_fednano_v1_ForwardLogitsResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Label-private split training, step 1: the LM's logits at the answer positions only. No targets are sent; the
   * client computes its loss and d(loss)/d(logits) from them itself.
   */
  forwardLogits(argument: _fednano_v1_ForwardLogitsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_ForwardLogitsResponse__Output>): grpc.ClientUnaryCall;
  forwardLogits(argument: _fednano_v1_ForwardLogitsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_fednano_v1_ForwardLogitsResponse__Output>): grpc.ClientUnaryCall;
  forwardLogits(argument: _fednano_v1_ForwardLogitsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_ForwardLogitsResponse__Output>): grpc.ClientUnaryCall;
  forwardLogits(argument: _fednano_v1_ForwardLogitsRequest, callback: grpc.requestCallback<_fednano_v1_ForwardLogitsResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * What the host serves: model id and the shapes a request must have.
   */
  Info(argument: _fednano_v1_InfoRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_InfoResponse__Output>): grpc.ClientUnaryCall;
  Info(argument: _fednano_v1_InfoRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_fednano_v1_InfoResponse__Output>): grpc.ClientUnaryCall;
  Info(argument: _fednano_v1_InfoRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_InfoResponse__Output>): grpc.ClientUnaryCall;
  Info(argument: _fednano_v1_InfoRequest, callback: grpc.requestCallback<_fednano_v1_InfoResponse__Output>): grpc.ClientUnaryCall;
  /**
   * What the host serves: model id and the shapes a request must have.
   */
  info(argument: _fednano_v1_InfoRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_InfoResponse__Output>): grpc.ClientUnaryCall;
  info(argument: _fednano_v1_InfoRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_fednano_v1_InfoResponse__Output>): grpc.ClientUnaryCall;
  info(argument: _fednano_v1_InfoRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_InfoResponse__Output>): grpc.ClientUnaryCall;
  info(argument: _fednano_v1_InfoRequest, callback: grpc.requestCallback<_fednano_v1_InfoResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Forward only: sample losses and the next-token logits at one position per sample (evaluation).
   */
  Score(argument: _fednano_v1_ScoreRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_ScoreResponse__Output>): grpc.ClientUnaryCall;
  Score(argument: _fednano_v1_ScoreRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_fednano_v1_ScoreResponse__Output>): grpc.ClientUnaryCall;
  Score(argument: _fednano_v1_ScoreRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_ScoreResponse__Output>): grpc.ClientUnaryCall;
  Score(argument: _fednano_v1_ScoreRequest, callback: grpc.requestCallback<_fednano_v1_ScoreResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Forward only: sample losses and the next-token logits at one position per sample (evaluation).
   */
  score(argument: _fednano_v1_ScoreRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_ScoreResponse__Output>): grpc.ClientUnaryCall;
  score(argument: _fednano_v1_ScoreRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_fednano_v1_ScoreResponse__Output>): grpc.ClientUnaryCall;
  score(argument: _fednano_v1_ScoreRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_fednano_v1_ScoreResponse__Output>): grpc.ClientUnaryCall;
  score(argument: _fednano_v1_ScoreRequest, callback: grpc.requestCallback<_fednano_v1_ScoreResponse__Output>): grpc.ClientUnaryCall;
  
}

export interface LlmHostHandlers extends grpc.UntypedServiceImplementation {
  /**
   * Label-private split training, step 2: d(sum logits_grad * logits)/d(inputs_embeds). The host recomputes the
   * forward pass instead of keeping state between the two calls, so either may be retried, batched or sent to a
   * restarted host.
   */
  BackwardLogits: grpc.handleUnaryCall<_fednano_v1_BackwardLogitsRequest__Output, _fednano_v1_BackwardLogitsResponse>;
  
  /**
   * Forward and backward pass: sample losses and d(sum_b w_b * loss_b)/d(inputs_embeds).
   */
  ForwardBackward: grpc.handleUnaryCall<_fednano_v1_ForwardBackwardRequest__Output, _fednano_v1_ForwardBackwardResponse>;
  
  /**
   * Label-private split training, step 1: the LM's logits at the answer positions only. No targets are sent; the
   * client computes its loss and d(loss)/d(logits) from them itself.
   */
  ForwardLogits: grpc.handleUnaryCall<_fednano_v1_ForwardLogitsRequest__Output, _fednano_v1_ForwardLogitsResponse>;
  
  /**
   * What the host serves: model id and the shapes a request must have.
   */
  Info: grpc.handleUnaryCall<_fednano_v1_InfoRequest__Output, _fednano_v1_InfoResponse>;
  
  /**
   * Forward only: sample losses and the next-token logits at one position per sample (evaluation).
   */
  Score: grpc.handleUnaryCall<_fednano_v1_ScoreRequest__Output, _fednano_v1_ScoreResponse>;
  
}

export interface LlmHostDefinition extends grpc.ServiceDefinition {
  BackwardLogits: MethodDefinition<_fednano_v1_BackwardLogitsRequest, _fednano_v1_BackwardLogitsResponse, _fednano_v1_BackwardLogitsRequest__Output, _fednano_v1_BackwardLogitsResponse__Output>
  ForwardBackward: MethodDefinition<_fednano_v1_ForwardBackwardRequest, _fednano_v1_ForwardBackwardResponse, _fednano_v1_ForwardBackwardRequest__Output, _fednano_v1_ForwardBackwardResponse__Output>
  ForwardLogits: MethodDefinition<_fednano_v1_ForwardLogitsRequest, _fednano_v1_ForwardLogitsResponse, _fednano_v1_ForwardLogitsRequest__Output, _fednano_v1_ForwardLogitsResponse__Output>
  Info: MethodDefinition<_fednano_v1_InfoRequest, _fednano_v1_InfoResponse, _fednano_v1_InfoRequest__Output, _fednano_v1_InfoResponse__Output>
  Score: MethodDefinition<_fednano_v1_ScoreRequest, _fednano_v1_ScoreResponse, _fednano_v1_ScoreRequest__Output, _fednano_v1_ScoreResponse__Output>
}
