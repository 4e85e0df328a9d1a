// Original file: proto/fednano/v1/llm_host.proto


export interface InfoResponse {
  'modelId'?: (string);
  'dModel'?: (number);
  'contextLength'?: (number);
  'vocabSize'?: (number);
  /**
   * Largest batch the host runs at once; larger requests are split.
   */
  'maxBatch'?: (number);
}

export interface InfoResponse__Output {
  'modelId': (string);
  'dModel': (number);
  'contextLength': (number);
  'vocabSize': (number);
  /**
   * Largest batch the host runs at once; larger requests are split.
   */
  'maxBatch': (number);
}
