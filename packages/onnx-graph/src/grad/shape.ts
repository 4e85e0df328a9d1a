import { sliceRange } from '../ops/shape.js';
import { tensor } from '../tensor.js';
import type { GradContext, GradRule } from './rule.js';

const norm = (a: number, rank: number) => (a < 0 ? a + rank : a);

/** Build-time integer values of input i (axes, starts, ...), failing clearly when they are not constants. */
function constInput(ctx: GradContext, i: number, what: string): number[] {
  const v = ctx.g.valueOf(ctx.x(i));
  if (!v || v.some((d) => typeof d !== 'number')) ctx.fail(`${what} must be a build-time constant to differentiate`);
  return v as number[];
}

/** Axes of a reduction, from the attribute (older opsets) or the constant input; all axes when empty. */
function reductionAxes(ctx: GradContext, rank: number): number[] | 'noop' {
  const fromAttr = ctx.attr<number[]>('axes');
  const given = fromAttr ?? (ctx.node.inputs[1] ? constInput(ctx, 1, 'axes') : []);
  if (given.length === 0) {
    if (ctx.attr<number>('noop_with_empty_axes')) return 'noop';
    return Array.from({ length: rank }, (_, i) => i);
  }
  return given.map((a) => norm(a, rank)).sort((a, b) => a - b);
}

/** Broadcasts the gradient of a reduction back over the reduced axes. */
function expandReduced(ctx: GradContext): { dx: string; x: string; axes: number[] } {
  const { ops, g } = ctx;
  const x = ctx.x(0);
  const rank = g.shapeOf(x).length;
  const axes = reductionAxes(ctx, rank);
  if (axes === 'noop') return { dx: ctx.dy(0)!, x, axes: [] };
  const keep = ctx.attr<number>('keepdims') === 1 ? ctx.dy(0)! : ops.unsqueeze(ctx.dy(0)!, axes);
  return { dx: g.op('Expand', [keep, ops.shape(x)]), x, axes };
}

export const shapeRules: Record<string, GradRule> = {
  Transpose: (ctx) => {
    const rank = ctx.g.shapeOf(ctx.x(0)).length;
    const perm = ctx.attr<number[]>('perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
    const inverse = new Array<number>(rank);
    perm.forEach((p, i) => {
      inverse[p] = i;
    });
    return [ctx.ops.transpose(ctx.dy(0)!, inverse)];
  },
  Reshape: (ctx) => [ctx.ops.reshapeLike(ctx.dy(0)!, ctx.x(0)), undefined],
  Unsqueeze: (ctx) => [ctx.ops.reshapeLike(ctx.dy(0)!, ctx.x(0)), undefined],
  Squeeze: (ctx) => [ctx.ops.reshapeLike(ctx.dy(0)!, ctx.x(0)), undefined],
  Expand: (ctx) => [ctx.ops.unbroadcast(ctx.dy(0)!, ctx.x(0)), undefined],

  ReduceSum: (ctx) => [expandReduced(ctx).dx, undefined],
  ReduceMean: (ctx) => {
    const { ops, g } = ctx;
    const { dx, x, axes } = expandReduced(ctx);
    const shape = g.shapeOf(x);
    const reduced = axes.map((a) => shape[a]!);
    if (reduced.every((d) => typeof d === 'number'))
      return [ops.scale(dx, 1 / (reduced as number[]).reduce((p, d) => p * d, 1)), undefined];
    // Symbolic reduced dims: divide by the element ratio measured at run time.
    const dtype = g.typeOf(x).dtype;
    const ratio = ops.div(ops.cast(g.op('Size', [ctx.y(0)]), dtype), ops.cast(g.op('Size', [x]), dtype));
    return [ops.mul(dx, ratio), undefined];
  },

  Concat: (ctx) => {
    const { g } = ctx;
    const inputs = ctx.node.inputs;
    const rank = g.shapeOf(inputs[0]!).length;
    const axis = norm(ctx.attr<number>('axis')!, rank);
    const sizes = inputs.map((x) => g.shapeOf(x)[axis]!);
    if (sizes.some((s) => typeof s !== 'number'))
      ctx.fail(`inputs must have static sizes along the concatenation axis (got [${sizes}])`);
    const parts = g.node('Split', [ctx.dy(0)!, g.ints(sizes as number[])], { axis }, { outputCount: inputs.length });
    return parts.map((p, i) => (ctx.needs(i) ? p : undefined));
  },
  Split: (ctx) => {
    const { ops, g } = ctx;
    const rank = g.shapeOf(ctx.x(0)).length;
    const axis = norm(ctx.attr<number>('axis')!, rank);
    const parts = ctx.node.outputs.map((o, i) => ctx.dy(i) ?? ops.zerosLike(o));
    return [g.op('Concat', parts, { axis }), undefined];
  },
  // Slice with unit steps: the gradient is dy zero-padded back to the input's extent.
  Slice: (ctx) => {
    const { g } = ctx;
    const x = ctx.x(0);
    const shape = g.shapeOf(x);
    const starts = constInput(ctx, 1, 'starts');
    const ends = constInput(ctx, 2, 'ends');
    const axes = ctx.node.inputs[3] ? constInput(ctx, 3, 'axes') : starts.map((_, i) => i);
    const steps = ctx.node.inputs[4] ? constInput(ctx, 4, 'steps') : starts.map(() => 1);
    const before = shape.map(() => 0);
    const after = shape.map(() => 0);
    axes.forEach((a0, k) => {
      const a = norm(a0, shape.length);
      const d = shape[a]!;
      if (steps[k] !== 1) ctx.fail(`only unit steps can be differentiated (axis ${a} has step ${steps[k]})`);
      if (typeof d !== 'number') ctx.fail(`sliced axis ${a} must have a static size to differentiate`);
      const [s, e] = sliceRange(starts[k]!, ends[k]!, 1, d as number);
      before[a] = s;
      after[a] = (d as number) - Math.max(e, s);
    });
    return [g.op('Pad', [ctx.dy(0)!, g.ints([...before, ...after])]), undefined, undefined, undefined, undefined];
  },

  /**
   * Gather along `axis`: the gradient scatters dy back into zeros of the data's shape, adding where indices repeat
   * (an embedding row used twice gets both gradients). Axis 0 scatters directly; other axes go through transposes.
   */
  Gather: (ctx) => {
    const { ops, g } = ctx;
    const [data, indices] = [ctx.x(0), ctx.x(1)];
    const dShape = g.shapeOf(data);
    const r = dShape.length;
    const q = g.shapeOf(indices).length;
    const axis = norm(ctx.attr<number>('axis')!, r);
    const rows = dShape[axis]!;
    // ScatterND has no negative indices; wrap them like Gather does.
    let idx = indices;
    const idxType = g.typeOf(indices).dtype;
    if (typeof rows === 'number') {
      const zero = g.constant(tensor(idxType, [], [0]));
      const wrapped = ops.add(indices, g.constant(tensor(idxType, [], [rows])));
      idx = g.op('Where', [g.op('Less', [indices, zero]), wrapped, indices]);
    }
    const permData = [axis, ...Array.from({ length: r }, (_, i) => i).filter((i) => i !== axis)];
    const rest = Array.from({ length: r }, (_, i) => i).filter((i) => i !== axis);
    // dy's axes: data[:axis] ++ indices ++ data[axis+1:]; bring the indices' axes to the front.
    const permDy = [...Array.from({ length: q }, (_, i) => axis + i), ...rest.map((i) => (i < axis ? i : i + q - 1))];
    const dy = ops.transpose(ctx.dy(0)!, permDy);
    const zerosShape = permData.map((i) => dShape[i]!);
    const zeros = zerosShape.every((d) => typeof d === 'number')
      ? g.op('ConstantOfShape', [g.ints(zerosShape as number[])], { value: tensor(g.typeOf(data).dtype, [1], [0]) })
      : ops.zerosLike(ops.transpose(data, permData));
    const scattered = g.op('ScatterND', [zeros, ops.unsqueeze(idx, [-1]), dy], { reduction: 'add' });
    const inverse = new Array<number>(r);
    permData.forEach((p, i) => {
      inverse[p] = i;
    });
    return [ops.transpose(scattered, inverse), undefined];
  },
};
