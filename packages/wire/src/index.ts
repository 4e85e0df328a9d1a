export * from './connect.js';
export type { LlmHostHandlers } from './generated/fednano/v1/LlmHost.js';
export * from './grpc.js';
export * from './llm-host-client.js';
export * from './names.js';
export * from './round.js';
export * from './storage.js';
export * from './tensors.js';
export * from './updates.js';
