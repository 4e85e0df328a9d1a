import { DType, isFloating } from '../dtype.js';
import type { OpSchema } from './schema.js';
import { same } from './schema.js';
import { broadcastShapes, sameDTypes } from './util.js';

const unary = (floatOnly = true): OpSchema => ({
  inputs: [1, 1],
  outputs: [1, 1],
  attrs: {},
  infer(ctx) {
    const x = ctx.input(0);
    if (floatOnly && !isFloating(x.dtype)) ctx.fail('input must be a floating-point tensor');
    return { types: [same(x)] };
  },
});

const binary = (resultType?: DType): OpSchema => ({
  inputs: [2, 2],
  outputs: [1, 1],
  attrs: {},
  infer(ctx) {
    const a = ctx.input(0);
    const b = ctx.input(1);
    if (ctx.node.op !== 'Pow') sameDTypes(ctx, [a, b]);
    return { types: [{ dtype: resultType ?? a.dtype, shape: broadcastShapes(ctx, [a.shape, b.shape]) }] };
  },
});

/** Sum, Max, Min: any number of inputs, broadcast together. */
const variadic = (): OpSchema => ({
  inputs: [1, Number.POSITIVE_INFINITY],
  outputs: [1, 1],
  attrs: {},
  infer(ctx) {
    const types = Array.from({ length: ctx.inputCount }, (_, i) => ctx.input(i));
    sameDTypes(ctx, types);
    return {
      types: [
        {
          dtype: types[0]!.dtype,
          shape: broadcastShapes(
            ctx,
            types.map((t) => t.shape),
          ),
        },
      ],
    };
  },
});

export const elementwiseOps: Record<string, OpSchema> = {
  Add: binary(),
  Sub: binary(),
  Mul: binary(),
  Div: binary(),
  Pow: binary(),
  Equal: binary(DType.BOOL),
  Greater: binary(DType.BOOL),
  Less: binary(DType.BOOL),
  GreaterOrEqual: binary(DType.BOOL),
  LessOrEqual: binary(DType.BOOL),
  And: binary(DType.BOOL),
  Or: binary(DType.BOOL),
  Neg: unary(false),
  Abs: unary(false),
  Sign: unary(false),
  Reciprocal: unary(),
  Sqrt: unary(),
  Exp: unary(),
  Log: unary(),
  Tanh: unary(),
  Sigmoid: unary(),
  Relu: unary(),
  Erf: unary(),
  Identity: unary(false),
  Not: unary(false),
  Gelu: { ...unary(), attrs: { approximate: { type: 'string', default: 'none' } } },
  Cast: {
    inputs: [1, 1],
    outputs: [1, 1],
    attrs: { to: { type: 'int' }, saturate: { type: 'int' } },
    infer(ctx) {
      const to = ctx.attr<number>('to');
      if (to === undefined) ctx.fail("missing required attribute 'to'");
      return { types: [same(ctx.input(0), to as DType)], values: [ctx.value(0)] };
    },
  },
  Where: {
    inputs: [3, 3],
    outputs: [1, 1],
    attrs: {},
    infer(ctx) {
      const [c, x, y] = [ctx.input(0), ctx.input(1), ctx.input(2)];
      if (c.dtype !== DType.BOOL) ctx.fail('condition must be bool');
      sameDTypes(ctx, [x, y]);
      return { types: [{ dtype: x.dtype, shape: broadcastShapes(ctx, [c.shape, x.shape, y.shape]) }] };
    },
  },
  Max: variadic(),
  Min: variadic(),
  Sum: variadic(),
};
