import type { DenseTensor, DenseTensor__Output } from './generated/fednano/v1/DenseTensor.js';

/** Conversions between typed arrays and the API's DenseTensor, with the checks a server needs on client input. */
export class TensorError extends Error {
  override name = 'TensorError';
}

const bytesOf = (a: Float32Array | BigInt64Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

export const floatTensor = (dims: number[], data: Float32Array): DenseTensor => ({
  dtype: 'DATA_TYPE_FLOAT',
  dims,
  data: bytesOf(data),
});

export const int64Tensor = (dims: number[], data: BigInt64Array): DenseTensor => ({
  dtype: 'DATA_TYPE_INT64',
  dims,
  data: bytesOf(data),
});

function check(
  what: string,
  t: DenseTensor__Output | null | undefined,
  dtype: string,
  dims: (number | undefined)[],
  width: number,
): { dims: number[]; bytes: Buffer } {
  if (!t) throw new TensorError(`${what} is missing`);
  if (t.dtype !== dtype) throw new TensorError(`${what} has type ${t.dtype}, expected ${dtype}`);
  const got = t.dims.map(Number);
  if (got.length !== dims.length || got.some((d, i) => !Number.isInteger(d) || d < 1 || (dims[i] ?? d) !== d))
    throw new TensorError(`${what} has shape [${got}], expected [${dims.map((d) => d ?? '?')}]`);
  const n = got.reduce((a, b) => a * b, 1);
  if (t.data.length !== n * width)
    throw new TensorError(`${what} has ${t.data.length} data bytes, expected ${n * width} for shape [${got}]`);
  return { dims: got, bytes: t.data };
}

/** Reads a float tensor of the expected shape (undefined = any size) into an aligned copy. */
export function readFloat(
  what: string,
  t: DenseTensor__Output | null | undefined,
  dims: (number | undefined)[],
): { dims: number[]; data: Float32Array } {
  const c = check(what, t, 'DATA_TYPE_FLOAT', dims, 4);
  const data = new Float32Array(c.bytes.length / 4);
  new Uint8Array(data.buffer).set(c.bytes);
  return { dims: c.dims, data };
}

export function readInt64(
  what: string,
  t: DenseTensor__Output | null | undefined,
  dims: (number | undefined)[],
): { dims: number[]; data: BigInt64Array } {
  const c = check(what, t, 'DATA_TYPE_INT64', dims, 8);
  const data = new BigInt64Array(c.bytes.length / 8);
  new Uint8Array(data.buffer).set(c.bytes);
  return { dims: c.dims, data };
}
