export * from './adversary.js';
export * from './chart.js';
export * from './config.js';
export * from './held-out.js';
export * from './plan.js';
export * from './prepare.js';
export * from './simulate.js';
