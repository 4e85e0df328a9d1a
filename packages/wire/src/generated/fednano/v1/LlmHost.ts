// Original file: proto/fednano/v1/llm_host.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { ForwardBackwardRequest as _fednano_v1_ForwardBackwardRequest, ForwardBackwardRequest__Output as _fednano_v1_ForwardBackwardRequest__Output } from '../../fednano/v1/ForwardBackwardRequest.js';
import type { ForwardBackwardResponse as _fednano_v1_ForwardBackwardResponse, ForwardBackwardResponse__Output as _fednano_v1_ForwardBackwardResponse__Output } from '../../fednano/v1/ForwardBackwardResponse.js';
import type { InfoRequest as _fednano_v1_InfoRequest, InfoRequest__Output as _fednano_v1_InfoRequest__Output } from '../../fednano/v1/InfoRequest.js';
import type { InfoResponse as _fednano_v1_InfoResponse, InfoResponse__Output as _fednano_v1_InfoResponse__Output } from '../../fednano/v1/InfoResponse.js';
import type { ScoreRequest as _fednano_v1_ScoreRequest, ScoreRequest__Output as _fednano_v1_ScoreRequest__Output } from '../../fednano/v1/ScoreRequest.js';
import type { ScoreResponse as _fednano_v1_ScoreResponse, ScoreResponse__Output as _fednano_v1_ScoreResponse__Output } from '../../fednano/v1/ScoreResponse.js';

export interface LlmHostClient extends grpc.Client {
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
   * Forward and backward pass: sample losses and d(sum_b w_b * loss_b)/d(inputs_embeds).
   */
  ForwardBackward: grpc.handleUnaryCall<_fednano_v1_ForwardBackwardRequest__Output, _fednano_v1_ForwardBackwardResponse>;
  
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
  ForwardBackward: MethodDefinition<_fednano_v1_ForwardBackwardRequest, _fednano_v1_ForwardBackwardResponse, _fednano_v1_ForwardBackwardRequest__Output, _fednano_v1_ForwardBackwardResponse__Output>
  Info: MethodDefinition<_fednano_v1_InfoRequest, _fednano_v1_InfoResponse, _fednano_v1_InfoRequest__Output, _fednano_v1_InfoResponse__Output>
  Score: MethodDefinition<_fednano_v1_ScoreRequest, _fednano_v1_ScoreResponse, _fednano_v1_ScoreRequest__Output, _fednano_v1_ScoreResponse__Output>
}
