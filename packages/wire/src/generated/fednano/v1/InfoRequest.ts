// Original file: proto/fednano/v1/llm_host.proto


export interface InfoRequest {
}

export interface InfoRequest__Output {
}
