import { isFloating } from '../dtype.js';
import type { GradContext, GradRule } from './rule.js';

/** Gradient of an input only when it needs one, so unused branches emit no nodes. */
const when = (ctx: GradContext, i: number, f: () => string): string | undefined => (ctx.needs(i) ? f() : undefined);

const dy = (ctx: GradContext): string => ctx.dy(0)!;

export const elementwiseRules: Record<string, GradRule> = {
  Identity: (ctx) => [dy(ctx)],
  Neg: (ctx) => [ctx.ops.neg(dy(ctx))],

  Add: (ctx) => {
    const { ops } = ctx;
    return [
      when(ctx, 0, () => ops.unbroadcast(dy(ctx), ctx.x(0))),
      when(ctx, 1, () => ops.unbroadcast(dy(ctx), ctx.x(1))),
    ];
  },
  Sub: (ctx) => {
    const { ops } = ctx;
    return [
      when(ctx, 0, () => ops.unbroadcast(dy(ctx), ctx.x(0))),
      when(ctx, 1, () => ops.unbroadcast(ops.neg(dy(ctx)), ctx.x(1))),
    ];
  },
  Mul: (ctx) => {
    const { ops } = ctx;
    return [
      when(ctx, 0, () => ops.unbroadcast(ops.mul(dy(ctx), ctx.x(1)), ctx.x(0))),
      when(ctx, 1, () => ops.unbroadcast(ops.mul(dy(ctx), ctx.x(0)), ctx.x(1))),
    ];
  },
  // d(a/b)/da = 1/b; d(a/b)/db = -a/b^2 = -y/b
  Div: (ctx) => {
    const { ops } = ctx;
    return [
      when(ctx, 0, () => ops.unbroadcast(ops.div(dy(ctx), ctx.x(1)), ctx.x(0))),
      when(ctx, 1, () => ops.unbroadcast(ops.neg(ops.mul(dy(ctx), ops.div(ctx.y(0), ctx.x(1)))), ctx.x(1))),
    ];
  },
  Sum: (ctx) => ctx.node.inputs.map((_, i) => when(ctx, i, () => ctx.ops.unbroadcast(dy(ctx), ctx.x(i)))),

  // d(a^p)/da = p * a^(p-1); the exponent is treated as a constant.
  Pow: (ctx) => {
    if (ctx.needs(1))
      ctx.fail('gradient with respect to the exponent is not supported (Pow needs a constant exponent)');
    const { ops, g } = ctx;
    const a = ctx.x(0);
    const p = ops.cast(ctx.x(1), g.typeOf(a).dtype);
    const local = ops.mul(p, g.op('Pow', [a, ops.sub(p, ops.scalarLike(1, a))]));
    return [ops.unbroadcast(ops.mul(dy(ctx), local), a), undefined];
  },
  Sqrt: (ctx) => [ctx.ops.div(ctx.ops.scale(dy(ctx), 0.5), ctx.y(0))],
  Exp: (ctx) => [ctx.ops.mul(dy(ctx), ctx.y(0))],
  Log: (ctx) => [ctx.ops.div(dy(ctx), ctx.x(0))],
  Reciprocal: (ctx) => {
    const y = ctx.y(0);
    return [ctx.ops.neg(ctx.ops.mul(dy(ctx), ctx.ops.mul(y, y)))];
  },
  Abs: (ctx) => [ctx.ops.mul(dy(ctx), ctx.g.op('Sign', [ctx.x(0)]))],
  Tanh: (ctx) => {
    const { ops } = ctx;
    const y = ctx.y(0);
    return [ops.mul(dy(ctx), ops.sub(ops.scalarLike(1, y), ops.mul(y, y)))];
  },
  Sigmoid: (ctx) => {
    const { ops } = ctx;
    const y = ctx.y(0);
    return [ops.mul(dy(ctx), ops.mul(y, ops.sub(ops.scalarLike(1, y), y)))];
  },
  Relu: (ctx) => {
    const { ops, g } = ctx;
    const x = ctx.x(0);
    const positive = g.op('Greater', [x, ops.scalarLike(0, x)]);
    return [g.op('Where', [positive, dy(ctx), ops.scalarLike(0, x)])];
  },
  // d erf(x)/dx = 2/sqrt(pi) * exp(-x^2)
  Erf: (ctx) => {
    const { ops } = ctx;
    const x = ctx.x(0);
    return [ops.mul(dy(ctx), ops.scale(ops.exp(ops.neg(ops.mul(x, x))), 2 / Math.sqrt(Math.PI)))];
  },
  Gelu: (ctx) => {
    const { ops, g } = ctx;
    const x = ctx.x(0);
    const c = (v: number) => ops.scalarLike(v, x);
    const approximate = ctx.attr<string>('approximate');
    let local: string;
    if (approximate === 'tanh') {
      // y = x/2 * (1 + tanh(u)), u = k (x + 0.044715 x^3), k = sqrt(2/pi)
      // dy/dx = (1 + t)/2 + x/2 * (1 - t^2) * k * (1 + 3 * 0.044715 x^2)
      const k = Math.sqrt(2 / Math.PI);
      const x2 = ops.mul(x, x);
      const u = ops.scale(ops.add(x, ops.scale(ops.mul(x2, x), 0.044715)), k);
      const t = g.op('Tanh', [u]);
      const du = ops.scale(ops.add(c(1), ops.scale(x2, 3 * 0.044715)), k);
      const left = ops.scale(ops.add(c(1), t), 0.5);
      const right = ops.mul(ops.scale(x, 0.5), ops.mul(ops.sub(c(1), ops.mul(t, t)), du));
      local = ops.add(left, right);
    } else if (approximate === 'none') {
      // y = x * Phi(x): dy/dx = Phi(x) + x * phi(x)
      const phiCdf = ops.scale(ops.add(c(1), g.op('Erf', [ops.scale(x, Math.SQRT1_2)])), 0.5);
      const pdf = ops.scale(ops.exp(ops.scale(ops.mul(x, x), -0.5)), 1 / Math.sqrt(2 * Math.PI));
      local = ops.add(phiCdf, ops.mul(x, pdf));
    } else return ctx.fail(`unsupported approximate='${approximate}'`);
    return [ops.mul(dy(ctx), local)];
  },

  Cast: (ctx) => {
    const from = ctx.g.typeOf(ctx.x(0)).dtype;
    return [isFloating(from) ? ctx.ops.cast(dy(ctx), from) : undefined];
  },
  Where: (ctx) => {
    const { ops, g } = ctx;
    const cond = ctx.x(0);
    const zero = ops.scalarLike(0, dy(ctx));
    return [
      undefined,
      when(ctx, 1, () => ops.unbroadcast(g.op('Where', [cond, dy(ctx), zero]), ctx.x(1))),
      when(ctx, 2, () => ops.unbroadcast(g.op('Where', [cond, zero, dy(ctx)]), ctx.x(2))),
    ];
  },
};
