import { DType } from '../dtype.js';
import { type Tensor, toNumbers } from '../tensor.js';
import type { Dim } from '../types.js';
import type { InferContext, OpSchema } from './schema.js';
import { same } from './schema.js';
import { axesFrom, broadcastShapes, normAxis, sameDTypes, staticSize } from './util.js';

/** Values of a 1-D integer input, required to be known when the graph is built. */
function constInts(ctx: InferContext, i: number, what: string): number[] {
  const v = ctx.value(i);
  if (v === undefined || v.some((d) => typeof d !== 'number'))
    ctx.fail(`${what} (input ${i}) must be a constant known when the graph is built`);
  return v as number[];
}

/** Output dims of Reshape, resolving 0 (copy) and -1 (infer), with symbolic dims cancelled where possible. */
function reshapeDims(ctx: InferContext, input: Dim[], target: Dim[], allowZero: boolean): Dim[] {
  const out = target.map((d, i) =>
    d === 0 && !allowZero ? (input[i] ?? ctx.fail(`0 at position ${i} has no input dim to copy`)) : d,
  );
  const minus = out.filter((d) => d === -1).length;
  if (minus > 1) ctx.fail('at most one -1 is allowed in the target shape');
  if (minus === 0) {
    const a = staticSize(input);
    const b = staticSize(out);
    if (a !== undefined && b !== undefined && a !== b)
      ctx.fail(`cannot reshape [${input}] (${a} elements) to [${out}] (${b})`);
    return out;
  }
  const remaining = input.filter((d) => typeof d === 'string') as string[];
  let known = 1;
  for (const d of out) {
    if (d === -1) continue;
    if (typeof d === 'number') known *= d;
    else {
      const k = remaining.indexOf(d);
      if (k < 0) return out.map((x) => (x === -1 ? ctx.fresh() : x));
      remaining.splice(k, 1);
    }
  }
  const inNumeric = input.reduce<number>((p, d) => (typeof d === 'number' ? p * d : p), 1);
  if (inNumeric % known !== 0 && remaining.length === 0) ctx.fail(`cannot reshape [${input}] to [${target}]`);
  const ratio = inNumeric / known;
  let inferred: Dim;
  if (remaining.length === 0) inferred = ratio;
  else if (ratio === 1) inferred = remaining.join('*');
  else inferred = Number.isInteger(ratio) ? `${ratio}*${remaining.join('*')}` : ctx.fresh();
  return out.map((d) => (d === -1 ? inferred : d));
}

function tensorValues(t: Tensor): Dim[] | undefined {
  if ((t.dtype !== DType.INT64 && t.dtype !== DType.INT32) || t.dims.length > 1) return undefined;
  return toNumbers(t);
}

function constantTensor(ctx: InferContext): Tensor {
  const value = ctx.attr<Tensor>('value');
  if (value) return value;
  const f = ctx.attr<number>('value_float');
  if (f !== undefined) return { dtype: DType.FLOAT, dims: [], data: new Float32Array([f]) };
  const fs = ctx.attr<number[]>('value_floats');
  if (fs !== undefined) return { dtype: DType.FLOAT, dims: [fs.length], data: new Float32Array(fs) };
  const i = ctx.attr<number>('value_int');
  if (i !== undefined) return { dtype: DType.INT64, dims: [], data: new BigInt64Array([BigInt(i)]) };
  const is = ctx.attr<number[]>('value_ints');
  if (is !== undefined) return { dtype: DType.INT64, dims: [is.length], data: new BigInt64Array(is.map(BigInt)) };
  return ctx.fail('Constant needs one of value, value_float(s), value_int(s)');
}

const INT_MAX = 2 ** 62;

/** Dims of a shape known only at run time: as many fresh symbols as the shape input has entries (at least minRank). */
function runTimeShape(ctx: InferContext, input: number, minRank: number): Dim[] {
  const len = ctx.input(input).shape[0];
  if (typeof len !== 'number') return ctx.fail('target shape must have a static length');
  return Array.from({ length: Math.max(len, minRank) }, () => ctx.fresh());
}

export const shapeOps: Record<string, OpSchema> = {
  Constant: {
    inputs: [0, 0],
    outputs: [1, 1],
    attrs: {
      value: { type: 'tensor' },
      value_float: { type: 'float' },
      value_floats: { type: 'floats' },
      value_int: { type: 'int' },
      value_ints: { type: 'ints' },
    },
    infer(ctx) {
      const t = constantTensor(ctx);
      return { types: [{ dtype: t.dtype, shape: [...t.dims] }], values: [tensorValues(t)] };
    },
  },
  Shape: {
    inputs: [1, 1],
    outputs: [1, 1],
    attrs: { start: { type: 'int', default: 0 }, end: { type: 'int' } },
    infer(ctx) {
      const s = ctx.input(0).shape;
      const clamp = (a: number) => Math.min(Math.max(a < 0 ? a + s.length : a, 0), s.length);
      const dims = s.slice(clamp(ctx.attr<number>('start')!), clamp(ctx.attr<number>('end') ?? s.length));
      return { types: [{ dtype: DType.INT64, shape: [dims.length] }], values: [dims] };
    },
  },
  Size: {
    inputs: [1, 1],
    outputs: [1, 1],
    attrs: {},
    infer(ctx) {
      const n = staticSize(ctx.input(0).shape);
      return { types: [{ dtype: DType.INT64, shape: [] }], values: [n === undefined ? undefined : [n]] };
    },
  },
  ConstantOfShape: {
    inputs: [1, 1],
    outputs: [1, 1],
    attrs: { value: { type: 'tensor' } },
    infer(ctx) {
      const len = ctx.input(0).shape[0] ?? 0;
      if (typeof len !== 'number') return ctx.fail('shape input must have a static length');
      const shape = ctx.value(0) ?? Array.from({ length: len }, () => ctx.fresh());
      const dtype = ctx.attr<Tensor>('value')?.dtype ?? DType.FLOAT;
      return { types: [{ dtype, shape }] };
    },
  },
  Reshape: {
    inputs: [2, 2],
    outputs: [1, 1],
    attrs: { allowzero: { type: 'int', default: 0 } },
    infer(ctx) {
      const x = ctx.input(0);
      const target = ctx.value(1);
      if (target === undefined) return { types: [{ dtype: x.dtype, shape: runTimeShape(ctx, 1, 0) }] };
      return {
        types: [{ dtype: x.dtype, shape: reshapeDims(ctx, x.shape, target, ctx.attr<number>('allowzero') === 1) }],
        values: [ctx.value(0)],
      };
    },
  },
  Transpose: {
    inputs: [1, 1],
    outputs: [1, 1],
    attrs: { perm: { type: 'ints' } },
    infer(ctx) {
      const x = ctx.input(0);
      const rank = x.shape.length;
      const perm = ctx.attr<number[]>('perm') ?? x.shape.map((_, i) => rank - 1 - i);
      if (perm.length !== rank || [...perm].sort((a, b) => a - b).some((p, i) => p !== i))
        ctx.fail(`perm [${perm}] is not a permutation of ${rank} axes`);
      return { types: [{ dtype: x.dtype, shape: perm.map((p) => x.shape[p]!) }] };
    },
  },
  Unsqueeze: {
    inputs: [1, 2],
    outputs: [1, 1],
    attrs: { axes: { type: 'ints' } },
    infer(ctx) {
      const x = ctx.input(0);
      const given = axesFrom(ctx, 1) ?? ctx.fail('axes are required');
      const rank = x.shape.length + given.length;
      const axes = new Set(given.map((a) => normAxis(ctx, a, rank)));
      if (axes.size !== given.length) ctx.fail(`repeated axes [${given}]`);
      const rest = [...x.shape];
      const shape = Array.from({ length: rank }, (_, i) => (axes.has(i) ? 1 : rest.shift()!));
      return { types: [{ dtype: x.dtype, shape }], values: [ctx.value(0)] };
    },
  },
  Squeeze: {
    inputs: [1, 2],
    outputs: [1, 1],
    attrs: { axes: { type: 'ints' } },
    infer(ctx) {
      const x = ctx.input(0);
      const given = axesFrom(ctx, 1);
      let axes: Set<number>;
      if (given === undefined) {
        if (x.shape.some((d) => typeof d !== 'number')) ctx.fail('squeeze without axes needs a static shape');
        axes = new Set(x.shape.flatMap((d, i) => (d === 1 ? [i] : [])));
      } else axes = new Set(given.map((a) => normAxis(ctx, a, x.shape.length)));
      for (const a of axes)
        if (x.shape[a] !== 1 && typeof x.shape[a] === 'number') ctx.fail(`axis ${a} has size ${x.shape[a]}, not 1`);
      return { types: [{ dtype: x.dtype, shape: x.shape.filter((_, i) => !axes.has(i)) }], values: [ctx.value(0)] };
    },
  },
  Concat: {
    inputs: [1, Number.POSITIVE_INFINITY],
    outputs: [1, 1],
    attrs: { axis: { type: 'int' } },
    infer(ctx) {
      const types = Array.from({ length: ctx.inputCount }, (_, i) => ctx.input(i));
      sameDTypes(ctx, types);
      const first = types[0]!;
      const axisAttr = ctx.attr<number>('axis');
      if (axisAttr === undefined) return ctx.fail("missing required attribute 'axis'");
      const axis = normAxis(ctx, axisAttr, first.shape.length);
      let total: Dim = 0;
      for (const t of types) {
        if (t.shape.length !== first.shape.length) ctx.fail('inputs have different ranks');
        const d = t.shape[axis]!;
        total = typeof total === 'number' && typeof d === 'number' ? total + d : ctx.fresh();
      }
      const shape = first.shape.map((d, i) => (i === axis ? total : d));
      const parts = types.map((_, i) => ctx.value(i));
      const values =
        first.shape.length === 1 && parts.every((p) => p !== undefined) ? (parts.flat() as Dim[]) : undefined;
      return { types: [{ dtype: first.dtype, shape }], values: [values] };
    },
  },
  Split: {
    inputs: [1, 2],
    outputs: [1, Number.POSITIVE_INFINITY],
    attrs: { axis: { type: 'int', default: 0 }, num_outputs: { type: 'int' } },
    infer(ctx) {
      const x = ctx.input(0);
      const axis = normAxis(ctx, ctx.attr<number>('axis')!, x.shape.length);
      const n = ctx.node.outputs.length;
      const d = x.shape[axis]!;
      let sizes: Dim[];
      if (ctx.optionalInput(1)) sizes = constInts(ctx, 1, 'split');
      else if (typeof d === 'number') {
        const chunk = Math.ceil(d / n);
        sizes = Array.from({ length: n }, (_, i) => Math.min(chunk, d - chunk * i));
      } else sizes = Array.from({ length: n }, () => ctx.fresh());
      if (sizes.length !== n) ctx.fail(`split has ${sizes.length} sizes for ${n} outputs`);
      return { types: sizes.map((s) => ({ dtype: x.dtype, shape: x.shape.map((e, i) => (i === axis ? s : e)) })) };
    },
  },
  Slice: {
    inputs: [3, 5],
    outputs: [1, 1],
    attrs: {},
    infer(ctx) {
      const x = ctx.input(0);
      const count = ctx.input(1).shape[0];
      if (typeof count !== 'number') return ctx.fail('starts must have a static length');
      const axes = ctx.optionalInput(3) ? constInts(ctx, 3, 'axes') : Array.from({ length: count }, (_, i) => i);
      const shape = [...x.shape];
      const startValues = ctx.value(1);
      const endValues = ctx.value(2);
      const known = (v: Dim[] | undefined): v is number[] => v?.every((d) => typeof d === 'number') === true;
      if (!known(startValues) || !known(endValues)) {
        // Bounds computed at run time (e.g. from a Shape). A slice [0, n) with n a symbolic size has size n (the
        // graph's author guarantees n fits); any other slice gets a size known only at run time.
        axes.forEach((a, k) => {
          const end = endValues?.[k];
          const fromZero = startValues?.[k] === 0 && ctx.optionalInput(4) === undefined;
          shape[normAxis(ctx, a, x.shape.length)] = fromZero && typeof end === 'string' ? end : ctx.fresh();
        });
        return { types: [{ dtype: x.dtype, shape }] };
      }
      const starts = startValues;
      const ends = endValues;
      const steps = ctx.optionalInput(4) ? constInts(ctx, 4, 'steps') : starts.map(() => 1);
      const ranges: [number, number, number][] = [];
      axes.forEach((a0, k) => {
        const a = normAxis(ctx, a0, x.shape.length);
        const d = x.shape[a]!;
        const step = steps[k]!;
        if (step === 0) ctx.fail('steps must not be 0');
        if (typeof d !== 'number') {
          const whole = starts[k] === 0 && ends[k]! >= INT_MAX && step === 1;
          shape[a] = whole ? d : ctx.fresh();
          return;
        }
        const r = sliceRange(starts[k]!, ends[k]!, step, d);
        ranges[a] = r;
        shape[a] = Math.max(0, Math.ceil((r[1] - r[0]) / step));
      });
      const v = ctx.value(0);
      let values: Dim[] | undefined;
      if (v && x.shape.length === 1 && ranges[0]) {
        const [s, e, st] = ranges[0];
        values = [];
        for (let i = s; st > 0 ? i < e : i > e; i += st) values.push(v[i]!);
      }
      return { types: [{ dtype: x.dtype, shape }], values: [values] };
    },
  },
  Gather: {
    inputs: [2, 2],
    outputs: [1, 1],
    attrs: { axis: { type: 'int', default: 0 } },
    infer(ctx) {
      const data = ctx.input(0);
      const idx = ctx.input(1);
      if (idx.dtype !== DType.INT64 && idx.dtype !== DType.INT32) ctx.fail('indices must be int32 or int64');
      const axis = normAxis(ctx, ctx.attr<number>('axis')!, data.shape.length);
      const shape = [...data.shape.slice(0, axis), ...idx.shape, ...data.shape.slice(axis + 1)];
      const v = ctx.value(0);
      const iv = ctx.value(1);
      const values =
        v && iv && data.shape.length === 1 && iv.every((i) => typeof i === 'number')
          ? (iv as number[]).map((i) => v[i < 0 ? i + v.length : i]!)
          : undefined;
      return { types: [{ dtype: data.dtype, shape }], values: [values] };
    },
  },
  Expand: {
    inputs: [2, 2],
    outputs: [1, 1],
    attrs: {},
    infer(ctx) {
      const x = ctx.input(0);
      const target = ctx.value(1);
      if (target === undefined) return { types: [{ dtype: x.dtype, shape: runTimeShape(ctx, 1, x.shape.length) }] };
      return { types: [{ dtype: x.dtype, shape: broadcastShapes(ctx, [x.shape, target]) }] };
    },
  },
  Pad: {
    inputs: [2, 4],
    outputs: [1, 1],
    attrs: { mode: { type: 'string', default: 'constant' } },
    infer(ctx) {
      const x = ctx.input(0);
      const pads = constInts(ctx, 1, 'pads');
      const padAt = (k: number) => pads[k] ?? 0;
      const axes = ctx.optionalInput(3)
        ? constInts(ctx, 3, 'axes').map((a) => normAxis(ctx, a, x.shape.length))
        : x.shape.map((_, i) => i);
      if (pads.length !== 2 * axes.length) ctx.fail(`pads has ${pads.length} values for ${axes.length} axes`);
      const shape = [...x.shape];
      axes.forEach((a, k) => {
        const add = padAt(k) + padAt(k + axes.length);
        const d = shape[a]!;
        shape[a] = add === 0 ? d : typeof d === 'number' ? d + add : ctx.fresh();
      });
      return { types: [{ dtype: x.dtype, shape }] };
    },
  },
  ScatterND: {
    inputs: [3, 3],
    outputs: [1, 1],
    attrs: { reduction: { type: 'string', default: 'none' } },
    infer(ctx) {
      const data = ctx.input(0);
      sameDTypes(ctx, [data, ctx.input(2)]);
      return { types: [same(data)] };
    },
  },
  Range: {
    inputs: [3, 3],
    outputs: [1, 1],
    attrs: {},
    infer(ctx) {
      const [s, l, d] = [ctx.value(0), ctx.value(1), ctx.value(2)];
      const known = [s, l, d].every((v) => v && typeof v[0] === 'number');
      const n = known
        ? Math.max(0, Math.ceil(((l![0] as number) - (s![0] as number)) / (d![0] as number)))
        : ctx.fresh();
      return { types: [{ dtype: ctx.input(0).dtype, shape: [n] }] };
    },
  },
};

/** Start and end of a slice along one axis of size d, clamped as the ONNX spec says. */
export function sliceRange(start: number, end: number, step: number, d: number): [number, number, number] {
  let s = start < 0 ? start + d : start;
  let e = end < 0 ? end + d : end;
  if (step > 0) {
    s = Math.min(Math.max(s, 0), d);
    e = Math.min(Math.max(e, 0), d);
  } else {
    s = Math.min(Math.max(s, -1), d - 1);
    e = Math.min(Math.max(e, -1), d - 1);
  }
  return [s, e, step];
}
