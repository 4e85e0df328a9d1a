import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { BackwardLogitsRequest as _fednano_v1_BackwardLogitsRequest, BackwardLogitsRequest__Output as _fednano_v1_BackwardLogitsRequest__Output } from './fednano/v1/BackwardLogitsRequest.js';
import type { BackwardLogitsResponse as _fednano_v1_BackwardLogitsResponse, BackwardLogitsResponse__Output as _fednano_v1_BackwardLogitsResponse__Output } from './fednano/v1/BackwardLogitsResponse.js';
import type { DenseTensor as _fednano_v1_DenseTensor, DenseTensor__Output as _fednano_v1_DenseTensor__Output } from './fednano/v1/DenseTensor.js';
import type { ForwardBackwardRequest as _fednano_v1_ForwardBackwardRequest, ForwardBackwardRequest__Output as _fednano_v1_ForwardBackwardRequest__Output } from './fednano/v1/ForwardBackwardRequest.js';
import type { ForwardBackwardResponse as _fednano_v1_ForwardBackwardResponse, ForwardBackwardResponse__Output as _fednano_v1_ForwardBackwardResponse__Output } from './fednano/v1/ForwardBackwardResponse.js';
import type { ForwardLogitsRequest as _fednano_v1_ForwardLogitsRequest, ForwardLogitsRequest__Output as _fednano_v1_ForwardLogitsRequest__Output } from './fednano/v1/ForwardLogitsRequest.js';
import type { ForwardLogitsResponse as _fednano_v1_ForwardLogitsResponse, ForwardLogitsResponse__Output as _fednano_v1_ForwardLogitsResponse__Output } from './fednano/v1/ForwardLogitsResponse.js';
import type { InfoRequest as _fednano_v1_InfoRequest, InfoRequest__Output as _fednano_v1_InfoRequest__Output } from './fednano/v1/InfoRequest.js';
import type { InfoResponse as _fednano_v1_InfoResponse, InfoResponse__Output as _fednano_v1_InfoResponse__Output } from './fednano/v1/InfoResponse.js';
import type { LlmHostClient as _fednano_v1_LlmHostClient, LlmHostDefinition as _fednano_v1_LlmHostDefinition } from './fednano/v1/LlmHost.js';
import type { ScoreRequest as _fednano_v1_ScoreRequest, ScoreRequest__Output as _fednano_v1_ScoreRequest__Output } from './fednano/v1/ScoreRequest.js';
import type { ScoreResponse as _fednano_v1_ScoreResponse, ScoreResponse__Output as _fednano_v1_ScoreResponse__Output } from './fednano/v1/ScoreResponse.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  fednano: {
    v1: {
      BackwardLogitsRequest: MessageTypeDefinition<_fednano_v1_BackwardLogitsRequest, _fednano_v1_BackwardLogitsRequest__Output>
      BackwardLogitsResponse: MessageTypeDefinition<_fednano_v1_BackwardLogitsResponse, _fednano_v1_BackwardLogitsResponse__Output>
      DataType: EnumTypeDefinition
      DenseTensor: MessageTypeDefinition<_fednano_v1_DenseTensor, _fednano_v1_DenseTensor__Output>
      ForwardBackwardRequest: MessageTypeDefinition<_fednano_v1_ForwardBackwardRequest, _fednano_v1_ForwardBackwardRequest__Output>
      ForwardBackwardResponse: MessageTypeDefinition<_fednano_v1_ForwardBackwardResponse, _fednano_v1_ForwardBackwardResponse__Output>
      ForwardLogitsRequest: MessageTypeDefinition<_fednano_v1_ForwardLogitsRequest, _fednano_v1_ForwardLogitsRequest__Output>
      ForwardLogitsResponse: MessageTypeDefinition<_fednano_v1_ForwardLogitsResponse, _fednano_v1_ForwardLogitsResponse__Output>
      InfoRequest: MessageTypeDefinition<_fednano_v1_InfoRequest, _fednano_v1_InfoRequest__Output>
      InfoResponse: MessageTypeDefinition<_fednano_v1_InfoResponse, _fednano_v1_InfoResponse__Output>
      LlmHost: SubtypeConstructor<typeof grpc.Client, _fednano_v1_LlmHostClient> & { service: _fednano_v1_LlmHostDefinition }
      ScoreRequest: MessageTypeDefinition<_fednano_v1_ScoreRequest, _fednano_v1_ScoreRequest__Output>
      ScoreResponse: MessageTypeDefinition<_fednano_v1_ScoreResponse, _fednano_v1_ScoreResponse__Output>
    }
  }
}

