import ort from 'onnxruntime-node';
import { DType, dtypeFromOrtName, dtypeInfo } from '../dtype.js';
import type { Tensor } from '../tensor.js';

export type Feeds = Record<string, Tensor>;
export type Results = Record<string, Tensor>;

export function toOrt(t: Tensor): ort.Tensor {
  if (t.dtype === DType.BFLOAT16) throw new Error('ONNX Runtime for Node has no bfloat16 tensors; convert to float32');
  return new ort.Tensor(dtypeInfo(t.dtype).ortName as 'float32', t.data as Float32Array, t.dims);
}

export function fromOrt(t: ort.Tensor): Tensor {
  return { dtype: dtypeFromOrtName(t.type), dims: [...t.dims], data: t.data as Tensor['data'] };
}

export interface SessionConfig {
  /** Threads for one operator's work (default: ORT's choice). */
  intraOpThreads?: number;
  /** Spinning worker threads cut latency but steal cores from other sessions on small machines. */
  allowSpinning?: boolean;
  /** 'cpu' (default) or 'cuda'. 'cuda' fails clearly when the CUDA execution provider is not installed. */
  executionProvider?: 'cpu' | 'cuda';
}

export function sessionOptions(config: SessionConfig = {}): ort.InferenceSession.SessionOptions {
  const options: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    executionProviders: [config.executionProvider ?? 'cpu'],
  };
  if (config.intraOpThreads !== undefined) options.intraOpNumThreads = config.intraOpThreads;
  if (config.allowSpinning === false) options.extra = { session: { intra_op: { allow_spinning: '0' } } };
  return options;
}
