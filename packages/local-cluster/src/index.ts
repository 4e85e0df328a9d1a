export * from './cluster.js';
export * from './run-federation.js';
