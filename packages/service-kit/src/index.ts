export * from './crash-point.js';
export * from './flags.js';
export * from './free-port.js';
export * from './log.js';
export * from './nats-server.js';
export * from './ops-server.js';
export * from './service-process.js';
export * from './shutdown.js';
