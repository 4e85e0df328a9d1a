// Entry point for worker threads when the library runs from TypeScript sources: Node 20 does not apply loader
// hooks registered with `--import tsx` to a worker's own entry module, so register tsx here, then load the worker.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.tsEntry);
