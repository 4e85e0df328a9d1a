export * from './cluster.js';
export * from './local-identities.js';
export * from './run-federation.js';
