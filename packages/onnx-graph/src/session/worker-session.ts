import { readFile } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { Graph } from '../graph.js';
import { encodeModel } from '../onnx-io.js';
import type { Tensor } from '../tensor.js';
import type { Feeds, Results, SessionConfig } from './convert.js';
import { type FromWorker, type ToWorker, transferables } from './protocol.js';

export interface RunOptions {
  /** Outputs to compute (default: all). */
  outputs?: string[];
  /**
   * Output tensors for ONNX Runtime to write into. Their buffers move to the worker and back, so a caller that
   * passes the returned tensors in again runs a hot loop without allocating. The tensors passed in are detached.
   */
  preallocated?: Record<string, Tensor>;
  /**
   * Move the feeds' buffers to the worker instead of copying them (zero-copy). The caller's typed arrays are
   * detached afterwards. Views into a larger buffer are copied, since moving would take the whole buffer.
   */
  transferInputs?: boolean;
}

interface Pending {
  resolve(results: Results): void;
  reject(error: Error): void;
}

/** Starts the worker thread, from TypeScript sources through tsx when this module itself runs from them. */
function startWorker(): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./worker.js', import.meta.url));
  const tsEntry = new URL('./worker.ts', import.meta.url).href;
  return new Worker(new URL('./ts-worker-bootstrap.mjs', import.meta.url), { workerData: { tsEntry } });
}

/**
 * An ONNX Runtime session that runs in its own worker thread: `run()` never blocks the caller's event loop, so a
 * server can keep accepting requests while a batch is computed. Results come back by transfer (no copy).
 */
export class WorkerSession {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly running = new Set<Promise<Results>>();
  private failure?: Error;
  private closed = false;

  private constructor(
    private readonly worker: Worker,
    readonly inputNames: readonly string[],
    readonly outputNames: readonly string[],
  ) {
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (e) => this.failAll(e));
    worker.on('exit', (code) => {
      if (!this.closed) this.failAll(new Error(`session worker exited unexpectedly with code ${code}`));
    });
  }

  /** Loads a model (a Graph, ONNX bytes, or a path to a .onnx file) into a new worker thread. */
  static async create(model: Graph | Uint8Array | string, config: SessionConfig = {}): Promise<WorkerSession> {
    const bytes =
      model instanceof Graph ? encodeModel(model) : typeof model === 'string' ? await readFile(model) : model;
    const copy = new Uint8Array(bytes); // the worker takes ownership of this copy
    const worker = startWorker();
    const ready = await new Promise<Extract<FromWorker, { type: 'ready' }>>((resolve, reject) => {
      const onMessage = (m: FromWorker) => {
        worker.off('error', reject);
        if (m.type === 'ready') resolve(m);
        else reject(new Error(m.type === 'error' ? `cannot load model: ${m.message}` : `unexpected ${m.type}`));
      };
      worker.once('message', onMessage);
      worker.once('error', reject);
      const init: ToWorker = { type: 'init', model: copy, config };
      worker.postMessage(init, [copy.buffer as ArrayBuffer]);
    }).catch(async (e) => {
      await worker.terminate();
      throw e;
    });
    return new WorkerSession(worker, ready.inputNames, ready.outputNames);
  }

  /** Number of runs submitted and not yet finished. */
  get inFlight(): number {
    return this.pending.size;
  }

  run(feeds: Feeds, options: RunOptions = {}): Promise<Results> {
    if (this.closed) return Promise.reject(new Error('session is closed'));
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const pre = options.preallocated;
    const transfer = [
      ...(options.transferInputs ? transferables(Object.values(feeds)) : []),
      ...(pre ? transferables(Object.values(pre)) : []),
    ];
    const message: ToWorker = { type: 'run', id, feeds, outputs: options.outputs, preallocated: pre };
    const result = new Promise<Results>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage(message, transfer);
    });
    this.running.add(result);
    const forget = () => this.running.delete(result);
    result.then(forget, forget);
    return result;
  }

  /** Releases the session and stops the worker once runs in flight have finished. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true; // refuse new runs, finish the ones in flight
    await Promise.allSettled([...this.running]);
    if (this.failure) return;
    const done = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage({ type: 'close' } satisfies ToWorker);
    await done;
  }

  private onMessage(m: FromWorker): void {
    if (m.type === 'result' || (m.type === 'error' && m.id !== undefined)) {
      const p = this.pending.get(m.id!);
      if (!p) return;
      this.pending.delete(m.id!);
      if (m.type === 'result') p.resolve(m.results);
      else p.reject(new Error(`ONNX Runtime run failed: ${m.message}`));
    }
  }

  private failAll(error: Error): void {
    this.failure = error;
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }
}
