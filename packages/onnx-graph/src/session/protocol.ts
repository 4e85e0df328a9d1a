import type { Tensor } from '../tensor.js';
import type { SessionConfig } from './convert.js';

/** Messages between a WorkerSession and its worker thread. Tensors travel as plain {dtype, dims, data} objects. */
export type ToWorker =
  | { type: 'init'; model: Uint8Array; config: SessionConfig }
  | {
      type: 'run';
      id: number;
      feeds: Record<string, Tensor>;
      outputs?: string[];
      preallocated?: Record<string, Tensor>;
    }
  | { type: 'close' };

export type FromWorker =
  | { type: 'ready'; inputNames: string[]; outputNames: string[] }
  | { type: 'result'; id: number; results: Record<string, Tensor> }
  | { type: 'error'; id?: number; message: string }
  | { type: 'closed' };

/** The buffers of these tensors, for a transfer list. Views that do not span their whole buffer are not moved. */
export function transferables(tensors: Iterable<Tensor>): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const t of tensors) {
    const buf = t.data.buffer;
    if (buf instanceof ArrayBuffer && t.data.byteOffset === 0 && t.data.byteLength === buf.byteLength) out.add(buf);
  }
  return [...out];
}
