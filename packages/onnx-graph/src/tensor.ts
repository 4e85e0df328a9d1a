import { DType, dtypeInfo, type TypedArray } from './dtype.js';

/** A dense tensor held in a typed array (row-major), the value type of initializers, feeds and results. */
export interface Tensor {
  dtype: DType;
  dims: readonly number[];
  data: TypedArray;
}

export const sizeOf = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

export function tensor(dtype: DType, dims: readonly number[], values?: ArrayLike<number> | ArrayLike<bigint>): Tensor {
  const n = sizeOf(dims);
  const data = dtypeInfo(dtype).create(n);
  if (values) {
    if (values.length !== n) throw new Error(`tensor of shape [${dims}] needs ${n} values, got ${values.length}`);
    if (data instanceof BigInt64Array) for (let i = 0; i < n; i++) data[i] = BigInt(values[i] as number | bigint);
    else for (let i = 0; i < n; i++) data[i] = Number(values[i]);
  }
  return { dtype, dims: [...dims], data };
}

export const floats = (dims: readonly number[], values?: ArrayLike<number>) => tensor(DType.FLOAT, dims, values);
export const doubles = (dims: readonly number[], values?: ArrayLike<number>) => tensor(DType.DOUBLE, dims, values);
export const int64s = (dims: readonly number[], values?: ArrayLike<number> | ArrayLike<bigint>) =>
  tensor(DType.INT64, dims, values);

/** Small deterministic PRNG (mulberry32) so tests and model initialisation are reproducible from a seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples by Box-Muller. */
export function gaussian(random: () => number): () => number {
  return () => {
    const u = 1 - random();
    const v = random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

export function randn(dtype: DType, dims: readonly number[], random: () => number, scale = 1): Tensor {
  const t = tensor(dtype, dims);
  const normal = gaussian(random);
  for (let i = 0; i < t.data.length; i++) (t.data as Float32Array)[i] = normal() * scale;
  return t;
}

/** Reads element i of any tensor as a JavaScript number. */
export const at = (t: Tensor, i: number): number => Number(t.data[i]);

export function toNumbers(t: Tensor): number[] {
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}
