export * from './adapters.js';
export * from './codec.js';
export * from './float16.js';
export * from './llm-host.js';
export * from './local-training.js';
export * from './optim.js';
export * from './settings-schema.js';
export * from './strategies.js';
