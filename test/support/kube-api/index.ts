/** The emulated Kubernetes API server for tests: see README.md. */
export { type DeleteOptions, type FieldValidation, KubeCore, type WriteOptions } from './core.js';
export { ApiError, type Status } from './errors.js';
export { type ChangeEvent, KubeApi, type KubeApiOptions, startKubeApi, type Verb } from './server.js';
export type { KubeObject, ObjectMeta, OwnerReference } from './util.js';
