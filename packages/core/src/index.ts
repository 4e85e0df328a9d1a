export * from './optim.js';
