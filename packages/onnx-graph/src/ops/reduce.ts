import type { OpSchema } from './schema.js';
import { axesFrom, normAxis } from './util.js';

/** ReduceSum takes axes as an input since opset 13; ReduceMean/ReduceMax since opset 18 (attribute before). */
const reduce: OpSchema = {
  inputs: [1, 2],
  outputs: [1, 1],
  attrs: {
    keepdims: { type: 'int', default: 1 },
    noop_with_empty_axes: { type: 'int', default: 0 },
    axes: { type: 'ints' },
  },
  infer(ctx) {
    const x = ctx.input(0);
    const rank = x.shape.length;
    const given = axesFrom(ctx, 1);
    if (given !== undefined && given.length === 0 && ctx.attr<number>('noop_with_empty_axes'))
      return { types: [{ dtype: x.dtype, shape: [...x.shape] }] };
    const axes = new Set(
      given === undefined || given.length === 0 ? x.shape.map((_, i) => i) : given.map((a) => normAxis(ctx, a, rank)),
    );
    const keep = ctx.attr<number>('keepdims') === 1;
    const shape = x.shape.flatMap((d, i) => (axes.has(i) ? (keep ? [1] : []) : [d]));
    return { types: [{ dtype: x.dtype, shape }] };
  },
};

export const reduceOps: Record<string, OpSchema> = { ReduceSum: reduce, ReduceMean: reduce, ReduceMax: reduce };
