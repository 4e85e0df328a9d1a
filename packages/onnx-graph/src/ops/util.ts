import type { Dim, TensorType } from '../types.js';
import type { InferContext } from './schema.js';

/** Normalises a possibly negative axis against a rank, failing with the node's name when out of range. */
export function normAxis(ctx: InferContext, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) ctx.fail(`axis ${axis} is out of range for rank ${rank}`);
  return a;
}

/** Numpy-style multidirectional broadcasting of shapes. */
export function broadcastShapes(ctx: InferContext, shapes: Dim[][]): Dim[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let dim: Dim = 1;
    for (const s of shapes) {
      const d = s[s.length - rank + i];
      if (d === undefined || d === 1 || d === dim) continue;
      if (dim === 1) dim = d;
      else if (typeof dim === 'number' && typeof d === 'number')
        ctx.fail(`shapes ${shapes.map((x) => `[${x}]`).join(' and ')} do not broadcast`);
      // A symbolic dim against another value: it must equal it or be 1 at run time; keep the static one.
      else if (typeof dim === 'string' && typeof d === 'number') dim = d;
      else if (typeof dim === 'string' && typeof d === 'string') dim = ctx.fresh();
    }
    out.push(dim);
  }
  return out;
}

export function sameDTypes(ctx: InferContext, types: TensorType[]): void {
  const first = types[0];
  if (!first) return;
  for (const t of types)
    if (t.dtype !== first.dtype) ctx.fail(`inputs have different element types (${first.dtype} and ${t.dtype})`);
}

/** Product of dims, or undefined when any is symbolic. */
export function staticSize(dims: readonly Dim[]): number | undefined {
  let n = 1;
  for (const d of dims) {
    if (typeof d !== 'number') return undefined;
    n *= d;
  }
  return n;
}

/** Axes given as an attribute (older opsets) or as a constant input (newer ones). */
export function axesFrom(ctx: InferContext, inputIndex: number): number[] | undefined {
  const fromAttr = ctx.attr<number[]>('axes');
  if (fromAttr !== undefined) return fromAttr;
  if (ctx.optionalInput(inputIndex) === undefined) return undefined;
  const v = ctx.value(inputIndex);
  if (v === undefined || v.some((d) => typeof d !== 'number'))
    ctx.fail(`axes (input ${inputIndex}) must be a constant known when the graph is built`);
  return v as number[];
}
