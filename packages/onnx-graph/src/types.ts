import { type DType, dtypeName } from './dtype.js';
import type { Tensor } from './tensor.js';

/** A dimension: a number when static, a name when symbolic (e.g. 'batch'). Equal names mean equal sizes. */
export type Dim = number | string;

export interface TensorType {
  dtype: DType;
  shape: Dim[];
}

export type AttrValue = number | number[] | string | Tensor;

export interface Node {
  name: string;
  op: string;
  inputs: string[]; // '' marks an omitted optional input
  outputs: string[];
  attrs: Record<string, AttrValue>;
}

export interface ValueInfo extends TensorType {
  name: string;
}

/** An error in building or transforming a graph; the message names the node and operator at fault. */
export class GraphError extends Error {
  override name = 'GraphError';
}

export const formatShape = (shape: readonly Dim[]): string => `[${shape.join(',')}]`;
export const formatType = (t: TensorType): string => `${dtypeName(t.dtype)}${formatShape(t.shape)}`;
export const isStatic = (shape: readonly Dim[]): shape is number[] => shape.every((d) => typeof d === 'number');
export const describeNode = (n: Pick<Node, 'name' | 'op'>): string => `node '${n.name}' (${n.op})`;
