import { DType, Graph, gaussian, Ops, rng } from '@fednano/onnx-graph';

/**
 * NanoAdapters: low-rank residual adapters on the token embeddings that enter the frozen LLM, one for image tokens
 * and one for text tokens:  e' = e + s · (e·A)·B,  A: d×r, B: r×d, s = alpha / r, B initialised to zero (so a fresh
 * adapter is the identity). The forward and backward passes are closed forms over Float32Arrays (two small matmuls
 * each); `adapterGraph` builds the same maths as an ONNX graph so tests can check the closed forms against vjp().
 */
export interface AdapterConfig {
  rank: number;
  alpha: number;
}

/** Adapter parameters by name: image.A, image.B, text.A, text.B. */
export type AdapterWeights = Map<string, Float32Array>;
export type AdapterStream = 'image' | 'text';
export const ADAPTER_STREAMS: readonly AdapterStream[] = ['image', 'text'];
export const ADAPTER_TENSORS = ['image.A', 'image.B', 'text.A', 'text.B'] as const;

export function adapterShapes(dModel: number, rank: number): Record<string, [number, number]> {
  return { 'image.A': [dModel, rank], 'image.B': [rank, dModel], 'text.A': [dModel, rank], 'text.B': [rank, dModel] };
}

export const adapterScale = (c: AdapterConfig): number => c.alpha / c.rank;

export function validateAdapterConfig(c: AdapterConfig, dModel: number): void {
  if (!Number.isInteger(c.rank) || c.rank < 1 || c.rank > dModel)
    throw new Error(`adapter rank must be an integer from 1 to ${dModel}, got ${c.rank}`);
  if (!(c.alpha > 0)) throw new Error(`adapter alpha must be > 0, got ${c.alpha}`);
}

/** A: N(0, 1/d) (keeps e·A at the scale of e), B: zeros. Deterministic given the seed. */
export function initAdapters(dModel: number, c: AdapterConfig, seed: number): AdapterWeights {
  validateAdapterConfig(c, dModel);
  const normal = gaussian(rng(seed));
  const w: AdapterWeights = new Map();
  for (const [name, [rows, cols]] of Object.entries(adapterShapes(dModel, c.rank))) {
    const t = new Float32Array(rows * cols);
    if (name.endsWith('.A')) for (let i = 0; i < t.length; i++) t[i] = normal() / Math.sqrt(dModel);
    w.set(name, t);
  }
  return w;
}

export const cloneWeights = (w: AdapterWeights): AdapterWeights => new Map([...w].map(([k, v]) => [k, v.slice()]));

/** out = e + s (e A) B for `rows` rows of width d. Returns out and h = e A (kept for the backward pass). */
export function adapterForward(
  e: Float32Array,
  rows: number,
  d: number,
  A: Float32Array,
  B: Float32Array,
  scale: number,
): { out: Float32Array; h: Float32Array } {
  const r = A.length / d;
  const h = new Float32Array(rows * r);
  const out = e.slice(0, rows * d);
  for (let i = 0; i < rows; i++) {
    const eo = i * d;
    const ho = i * r;
    for (let k = 0; k < d; k++) {
      const v = e[eo + k]!;
      if (v === 0) continue;
      const ao = k * r;
      for (let j = 0; j < r; j++) h[ho + j]! += v * A[ao + j]!;
    }
    for (let j = 0; j < r; j++) {
      const hv = h[ho + j]! * scale;
      if (hv === 0) continue;
      const bo = j * d;
      for (let k = 0; k < d; k++) out[eo + k]! += hv * B[bo + k]!;
    }
  }
  return { out, h };
}

/**
 * Gradients of sum(g ⊙ out) w.r.t. A and B, accumulated into dA and dB:
 * dB += s hᵀ g,  dA += s eᵀ (g Bᵀ).  (The encoder side is frozen, so no gradient w.r.t. e is needed.)
 */
export function adapterBackward(
  e: Float32Array,
  h: Float32Array,
  g: Float32Array,
  rows: number,
  d: number,
  B: Float32Array,
  scale: number,
  dA: Float32Array,
  dB: Float32Array,
): void {
  const r = B.length / d;
  const gb = new Float32Array(r);
  for (let i = 0; i < rows; i++) {
    const o = i * d;
    gb.fill(0);
    for (let j = 0; j < r; j++) {
      const hv = h[i * r + j]! * scale;
      const bo = j * d;
      let acc = 0;
      for (let k = 0; k < d; k++) {
        const gv = g[o + k]!;
        dB[bo + k]! += hv * gv;
        acc += gv * B[bo + k]!;
      }
      gb[j] = acc * scale;
    }
    for (let k = 0; k < d; k++) {
      const v = e[o + k]!;
      if (v === 0) continue;
      const ao = k * r;
      for (let j = 0; j < r; j++) dA[ao + j]! += v * gb[j]!;
    }
  }
}

/** The adapter as an ONNX graph: e [rows, d], A, B -> out. Used to verify the closed forms with vjp(). */
export function adapterGraph(d: number, c: AdapterConfig, dtype: DType = DType.FLOAT): { graph: Graph; out: string } {
  const g = new Graph({ name: 'nano_adapter' });
  const ops = new Ops(g);
  const e = g.input('e', dtype, ['rows', d]);
  const A = g.input('A', dtype, [d, c.rank]);
  const B = g.input('B', dtype, [c.rank, d]);
  const out = ops.add(e, ops.scale(ops.matmul(ops.matmul(e, A), B), adapterScale(c)));
  g.output(out);
  return { graph: g, out };
}
