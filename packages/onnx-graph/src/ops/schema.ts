import type { DType } from '../dtype.js';
import type { AttrValue, Dim, Node, TensorType } from '../types.js';

export type AttrType = 'int' | 'float' | 'ints' | 'floats' | 'string' | 'tensor';

export interface AttrSpec {
  type: AttrType;
  default?: AttrValue;
}

/** What a shape-inference rule sees of one node. */
export interface InferContext {
  readonly node: Node;
  readonly opset: number;
  /** Number of inputs present (trailing omitted ones excluded). */
  readonly inputCount: number;
  /** Type of input i; fails if it is absent. */
  input(i: number): TensorType;
  /** Type of input i, or undefined when the optional input is omitted. */
  optionalInput(i: number): TensorType | undefined;
  /** Attribute value, its declared default, or undefined. */
  attr<T extends AttrValue>(name: string): T | undefined;
  /** The values of a small integer input when known at build time (constants, shapes); symbolic dims allowed. */
  value(i: number): Dim[] | undefined;
  /** A new symbolic dimension, for sizes that only exist at run time. */
  fresh(): string;
  fail(message: string): never;
}

export interface Inferred {
  types: TensorType[];
  /** Known values of integer outputs (see InferContext.value). */
  values?: (Dim[] | undefined)[];
}

export interface OpSchema {
  inputs: [min: number, max: number];
  outputs: [min: number, max: number];
  attrs: Record<string, AttrSpec>;
  infer(ctx: InferContext): Inferred;
}

export const same = (t: TensorType, dtype?: DType): TensorType => ({ dtype: dtype ?? t.dtype, shape: [...t.shape] });
