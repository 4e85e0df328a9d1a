import { DType, isFloating } from '../dtype.js';
import type { Dim } from '../types.js';
import type { OpSchema } from './schema.js';
import { same } from './schema.js';
import { broadcastShapes, normAxis, sameDTypes } from './util.js';

const softmaxLike: OpSchema = {
  inputs: [1, 1],
  outputs: [1, 1],
  attrs: { axis: { type: 'int', default: -1 } },
  infer(ctx) {
    const x = ctx.input(0);
    if (!isFloating(x.dtype)) ctx.fail('input must be a floating-point tensor');
    normAxis(ctx, ctx.attr<number>('axis')!, x.shape.length);
    return { types: [same(x)] };
  },
};

export const nnOps: Record<string, OpSchema> = {
  MatMul: {
    inputs: [2, 2],
    outputs: [1, 1],
    attrs: {},
    infer(ctx) {
      const a = ctx.input(0);
      const b = ctx.input(1);
      sameDTypes(ctx, [a, b]);
      const as = a.shape.length === 1 ? [1, a.shape[0]!] : a.shape;
      const bs = b.shape.length === 1 ? [b.shape[0]!, 1] : b.shape;
      if (as.length < 1 || bs.length < 1) ctx.fail('operands must have rank >= 1');
      const k1 = as[as.length - 1]!;
      const k2 = bs[bs.length - 2]!;
      if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2)
        ctx.fail(`inner dimensions differ: [${a.shape}] x [${b.shape}]`);
      const batch = broadcastShapes(ctx, [as.slice(0, -2), bs.slice(0, -2)]);
      const shape: Dim[] = [...batch];
      if (a.shape.length > 1) shape.push(as[as.length - 2]!);
      if (b.shape.length > 1) shape.push(bs[bs.length - 1]!);
      return { types: [{ dtype: a.dtype, shape }] };
    },
  },
  Gemm: {
    inputs: [2, 3],
    outputs: [1, 1],
    attrs: {
      alpha: { type: 'float', default: 1 },
      beta: { type: 'float', default: 1 },
      transA: { type: 'int', default: 0 },
      transB: { type: 'int', default: 0 },
    },
    infer(ctx) {
      const a = ctx.input(0);
      const b = ctx.input(1);
      if (a.shape.length !== 2 || b.shape.length !== 2) ctx.fail('A and B must be 2-D');
      const [m, ka] = ctx.attr<number>('transA') ? [a.shape[1]!, a.shape[0]!] : [a.shape[0]!, a.shape[1]!];
      const [kb, n] = ctx.attr<number>('transB') ? [b.shape[1]!, b.shape[0]!] : [b.shape[0]!, b.shape[1]!];
      if (typeof ka === 'number' && typeof kb === 'number' && ka !== kb)
        ctx.fail(`inner dimensions differ: op(A) is [${m},${ka}], op(B) is [${kb},${n}]`);
      const c = ctx.optionalInput(2);
      if (c) broadcastShapes(ctx, [c.shape, [m, n]]);
      return { types: [{ dtype: a.dtype, shape: [m, n] }] };
    },
  },
  Softmax: softmaxLike,
  LogSoftmax: softmaxLike,
  LayerNormalization: {
    inputs: [2, 3],
    outputs: [1, 3],
    attrs: {
      axis: { type: 'int', default: -1 },
      epsilon: { type: 'float', default: 1e-5 },
      stash_type: { type: 'int', default: 1 },
    },
    infer(ctx) {
      const x = ctx.input(0);
      const axis = normAxis(ctx, ctx.attr<number>('axis')!, x.shape.length);
      const statShape = x.shape.map((d, i) => (i < axis ? d : 1));
      const stash = ctx.attr<number>('stash_type') === 1 ? DType.FLOAT : x.dtype;
      return {
        types: [same(x), { dtype: stash, shape: statShape }, { dtype: stash, shape: [...statShape] }],
      };
    },
  },
  SoftmaxCrossEntropyLoss: {
    inputs: [2, 3],
    outputs: [1, 2],
    attrs: { ignore_index: { type: 'int' }, reduction: { type: 'string', default: 'mean' } },
    infer(ctx) {
      const scores = ctx.input(0);
      const labels = ctx.input(1);
      if (scores.shape.length < 2) ctx.fail('scores must be [N, C, ...]');
      if (labels.dtype !== DType.INT64 && labels.dtype !== DType.INT32) ctx.fail('labels must be int32 or int64');
      if (labels.shape.length !== scores.shape.length - 1)
        ctx.fail('labels must be [N, ...] matching scores [N, C, ...]');
      const reduction = ctx.attr<string>('reduction');
      if (!['mean', 'sum', 'none'].includes(reduction!)) ctx.fail(`unknown reduction '${reduction}'`);
      const lossShape = reduction === 'none' ? [...labels.shape] : [];
      return { types: [{ dtype: scores.dtype, shape: lossShape }, same(scores)] };
    },
  },
};
