import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DType } from '../dtype.js';
import { gradCheck } from '../gradcheck.js';
import { Graph } from '../graph.js';
import { Ops } from '../ops-helpers.js';
import { type Tensor, tensor } from '../tensor.js';
import { GraphError } from '../types.js';
import { vjp } from '../vjp.js';

const F64 = DType.DOUBLE;
const F32 = DType.FLOAT;

interface Case {
  name: string;
  dtype?: DType;
  /** Builds the forward graph and returns the output to differentiate. */
  build(g: Graph, o: Ops, dtype: DType): string;
  wrt: string[];
  feeds?: Record<string, Tensor>;
  tolerance?: { step?: number; rtol?: number; atol?: number };
}

/** Values away from zero, for operators defined or smooth only there (Log, Sqrt, Pow, Div). */
const positive = (dtype: DType, dims: number[]) =>
  tensor(
    dtype,
    dims,
    Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => 0.5 + ((i * 7919) % 13) / 10),
  );
const unary = (op: string, dtype = F64, attrs = {}, feed?: 'positive'): Case => ({
  name: `${op}${Object.keys(attrs).length ? ` ${JSON.stringify(attrs)}` : ''}`,
  dtype,
  build: (g) => g.op(op, [g.input('x', dtype, [3, 4])], attrs),
  wrt: ['x'],
  feeds: feed ? { x: positive(dtype, [3, 4]) } : undefined,
});
const binary = (op: string, feedB?: 'positive'): Case => ({
  name: `${op} with broadcasting`,
  build: (g) => g.op(op, [g.input('a', F64, [2, 3, 4]), g.input('b', F64, [3, 1])]),
  wrt: ['a', 'b'],
  feeds: feedB ? { b: positive(F64, [3, 1]) } : undefined,
});
const labels = (dims: number[], values: number[]) => tensor(DType.INT64, dims, values);

const cases: Case[] = [
  {
    name: 'MatMul 2-D',
    build: (g) => g.op('MatMul', [g.input('a', F64, [3, 4]), g.input('b', F64, [4, 5])]),
    wrt: ['a', 'b'],
  },
  {
    name: 'MatMul batched activations x shared weight (folded Gemm)',
    build: (g) => g.op('MatMul', [g.input('a', F64, [2, 3, 4]), g.input('b', F64, [4, 5])]),
    wrt: ['a', 'b'],
  },
  {
    name: 'MatMul with both batch dims broadcast',
    build: (g) => g.op('MatMul', [g.input('a', F64, [2, 1, 3, 4]), g.input('b', F64, [3, 4, 5])]),
    wrt: ['a', 'b'],
  },
  {
    name: 'MatMul 2-D x batched',
    build: (g) => g.op('MatMul', [g.input('a', F64, [3, 4]), g.input('b', F64, [2, 4, 5])]),
    wrt: ['a', 'b'],
  },
  ...[0, 1].flatMap((transA) =>
    [0, 1].map(
      (transB): Case => ({
        name: `Gemm transA=${transA} transB=${transB} alpha/beta, broadcast C`,
        build: (g) =>
          g.op(
            'Gemm',
            [
              g.input('a', F64, transA ? [4, 3] : [3, 4]),
              g.input('b', F64, transB ? [5, 4] : [4, 5]),
              g.input('c', F64, [5]),
            ],
            { transA, transB, alpha: 0.7, beta: 1.3 },
          ),
        wrt: ['a', 'b', 'c'],
      }),
    ),
  ),
  binary('Add'),
  binary('Sub'),
  binary('Mul'),
  binary('Div', 'positive'),
  {
    name: 'Sum of three with broadcasting',
    build: (g) => g.op('Sum', [g.input('a', F64, [2, 3]), g.input('b', F64, [3]), g.input('c', F64, [2, 1])]),
    wrt: ['a', 'b', 'c'],
  },
  unary('Neg'),
  {
    name: 'Pow with constant exponent 3',
    build: (g) => g.op('Pow', [g.input('x', F64, [3, 4]), g.scalar(3, F64)]),
    wrt: ['x'],
  },
  {
    name: 'Pow with constant exponent 0.5 (positive base)',
    build: (g) => g.op('Pow', [g.input('x', F64, [3, 4]), g.scalar(0.5, F64)]),
    wrt: ['x'],
    feeds: { x: positive(F64, [3, 4]) },
  },
  unary('Sqrt', F64, {}, 'positive'),
  unary('Exp'),
  unary('Log', F64, {}, 'positive'),
  unary('Tanh'),
  unary('Sigmoid'),
  unary('Relu'),
  unary('Reciprocal', F64, {}, 'positive'),
  unary('Gelu', F64, { approximate: 'tanh' }),
  // ONNX Runtime has no float64 Erf kernel, so exact Gelu and Erf are checked in float32 (see TOLERANCES).
  unary('Gelu', F32, { approximate: 'none' }),
  unary('Erf', F32),
  unary('Identity'),
  { name: 'Softmax axis -1', build: (g) => g.op('Softmax', [g.input('x', F64, [2, 3, 4])]), wrt: ['x'] },
  { name: 'Softmax axis 1', build: (g) => g.op('Softmax', [g.input('x', F64, [2, 3, 4])], { axis: 1 }), wrt: ['x'] },
  { name: 'LogSoftmax axis -1', build: (g) => g.op('LogSoftmax', [g.input('x', F64, [2, 3, 4])]), wrt: ['x'] },
  {
    name: 'LayerNormalization axis -1 with scale and bias',
    build: (g) =>
      g.op('LayerNormalization', [g.input('x', F64, [2, 3, 5]), g.input('s', F64, [5]), g.input('b', F64, [5])]),
    wrt: ['x', 's', 'b'],
  },
  {
    name: 'LayerNormalization over the last two axes',
    build: (g) =>
      g.op('LayerNormalization', [g.input('x', F64, [2, 3, 4]), g.input('s', F64, [3, 4]), g.input('b', F64, [4])], {
        axis: 1,
      }),
    wrt: ['x', 's', 'b'],
  },
  {
    name: 'LayerNormalization float32 (saved statistics reused)',
    dtype: F32,
    build: (g) => g.op('LayerNormalization', [g.input('x', F32, [2, 6]), g.input('s', F32, [6])]),
    wrt: ['x', 's'],
  },
  {
    name: 'ReduceSum axes [1] keepdims 0',
    build: (g, o) => o.reduce('ReduceSum', g.input('x', F64, [2, 3, 4]), [1], false),
    wrt: ['x'],
  },
  {
    name: 'ReduceSum all axes keepdims 1',
    build: (g) => g.op('ReduceSum', [g.input('x', F64, [2, 3])]),
    wrt: ['x'],
  },
  {
    name: 'ReduceMean axes [0,-1] keepdims 1',
    build: (g, o) => o.reduce('ReduceMean', g.input('x', F64, [2, 3, 4]), [0, -1], true),
    wrt: ['x'],
  },
  {
    name: 'Transpose',
    build: (g) => g.op('Transpose', [g.input('x', F64, [2, 3, 4])], { perm: [1, 2, 0] }),
    wrt: ['x'],
  },
  { name: 'Reshape with -1 and 0', build: (g, o) => o.reshape(g.input('x', F64, [2, 3, 4]), [0, -1]), wrt: ['x'] },
  { name: 'Unsqueeze', build: (g, o) => o.unsqueeze(g.input('x', F64, [2, 3]), [0, 3]), wrt: ['x'] },
  { name: 'Squeeze', build: (g, o) => o.squeeze(g.input('x', F64, [2, 1, 3]), [1]), wrt: ['x'] },
  {
    name: 'Concat axis 1, one input not differentiated',
    build: (g) =>
      g.op('Concat', [g.input('a', F64, [2, 1, 3]), g.input('b', F64, [2, 2, 3]), g.input('c', F64, [2, 3, 3])], {
        axis: 1,
      }),
    wrt: ['a', 'c'],
  },
  {
    name: 'Split into unequal parts, one unused',
    build: (g) => {
      const [p, , r] = g.node('Split', [g.input('x', F64, [2, 6]), g.ints([1, 2, 3])], { axis: 1 }, { outputCount: 3 });
      return g.op('Concat', [p!, r!], { axis: 1 });
    },
    wrt: ['x'],
  },
  {
    name: 'Slice with negative start and clamped end',
    build: (g) => g.op('Slice', [g.input('x', F64, [3, 5]), g.ints([1, -3]), g.ints([100, 4]), g.ints([0, 1])]),
    wrt: ['x'],
  },
  {
    name: 'Gather axis 0 (embedding lookup, repeated and negative indices)',
    build: (g) => g.op('Gather', [g.input('table', F64, [5, 3]), g.input('ids', DType.INT64, [2, 3])]),
    wrt: ['table'],
    feeds: { ids: labels([2, 3], [0, 4, 4, -1, 2, 0]) },
  },
  {
    name: 'Gather axis 1',
    build: (g) => g.op('Gather', [g.input('x', F64, [2, 4, 3]), g.input('ids', DType.INT64, [2])], { axis: 1 }),
    wrt: ['x'],
    feeds: { ids: labels([2], [3, 1]) },
  },
  {
    name: 'Where with a broadcast condition',
    build: (g) =>
      g.op('Where', [g.input('c', DType.BOOL, [3, 1]), g.input('a', F64, [2, 3, 4]), g.input('b', F64, [4])]),
    wrt: ['a', 'b'],
    feeds: { c: tensor(DType.BOOL, [3, 1], [1, 0, 1]) },
  },
  {
    name: 'Cast float32 -> float64',
    build: (g) => g.op('Tanh', [g.op('Cast', [g.input('x', F32, [3, 4])], { to: F64 })]),
    wrt: ['x'],
    tolerance: { step: 1e-3, rtol: 1e-3, atol: 1e-5 },
  },
  { name: 'Expand', build: (g) => g.op('Expand', [g.input('x', F64, [3, 1]), g.ints([2, 3, 4])]), wrt: ['x'] },
  ...(['mean', 'sum', 'none'] as const).map(
    (reduction): Case => ({
      name: `SoftmaxCrossEntropyLoss reduction=${reduction} with ignore_index`,
      build: (g) =>
        g.op('SoftmaxCrossEntropyLoss', [g.input('scores', F64, [4, 5]), g.input('y', DType.INT64, [4])], {
          reduction,
          ignore_index: -100,
        }),
      wrt: ['scores'],
      feeds: { y: labels([4], [1, -100, 4, 0]) },
    }),
  ),
  {
    name: 'SoftmaxCrossEntropyLoss [N,C,d] with class weights, mean',
    build: (g) =>
      g.op('SoftmaxCrossEntropyLoss', [
        g.input('scores', F64, [2, 3, 4]),
        g.input('y', DType.INT64, [2, 4]),
        g.constant(tensor(F64, [3], [0.5, 2, 1.5])),
      ]),
    wrt: ['scores'],
    feeds: { y: labels([2, 4], [0, 1, 2, 2, 1, 0, 0, 1]) },
  },
];

describe('gradient rules match float64 central finite differences', () => {
  for (const c of cases) {
    test(c.name, async () => {
      const g = new Graph();
      const out = c.build(g, new Ops(g), c.dtype ?? F64);
      g.output(out);
      const report = await gradCheck(g, { of: out, wrt: c.wrt, feeds: c.feeds, ...c.tolerance });
      assert.ok(report.checked > 0);
      assert.ok(report.ok, `gradient mismatch: ${JSON.stringify(report)}`);
    });
  }
});

describe('every listed operator has a checked rule', () => {
  test('coverage', () => {
    const required =
      'MatMul Gemm Add Sub Mul Div Neg Pow Sqrt Exp Log Tanh Sigmoid Relu Gelu Softmax LogSoftmax LayerNormalization ReduceSum ReduceMean Transpose Reshape Unsqueeze Squeeze Concat Slice Gather Where Cast Expand Identity SoftmaxCrossEntropyLoss'.split(
        ' ',
      );
    const covered = new Set(cases.map((c) => c.name.split(' ')[0]));
    assert.deepEqual(
      required.filter((op) => !covered.has(op)),
      [],
    );
  });
});

describe('what cannot be differentiated is reported, not mis-differentiated', () => {
  const expectError = (build: (g: Graph) => { of: string; wrt: string[] }, pattern: RegExp) => {
    const g = new Graph();
    const { of, wrt } = build(g);
    g.output(of);
    assert.throws(
      () => vjp(g, { of, wrt }),
      (e: unknown) => e instanceof GraphError && pattern.test(e.message),
    );
  };

  test('operator without a rule names the operator and the node', () => {
    expectError((g) => {
      const x = g.input('x', F64, [3]);
      return { of: g.op('ReduceMax', [x], {}, { name: 'pick_max' }), wrt: [x] };
    }, /node 'pick_max' \(ReduceMax\).*no gradient rule for operator 'ReduceMax'/);
  });
  test('Pow with a differentiated exponent', () => {
    expectError((g) => {
      const x = g.input('x', F64, [3]);
      return { of: g.op('Pow', [g.scalar(2, F64), x]), wrt: [x] };
    }, /\(Pow\).*exponent/);
  });
  test('Slice with a non-unit step', () => {
    expectError((g) => {
      const x = g.input('x', F64, [6]);
      return { of: g.op('Slice', [x, g.ints([0]), g.ints([6]), g.ints([0]), g.ints([2])]), wrt: [x] };
    }, /\(Slice\).*unit steps/);
  });
  test('MatMul with a 1-D operand', () => {
    expectError((g) => {
      const x = g.input('x', F64, [3]);
      return { of: g.op('MatMul', [x, g.input('w', F64, [3, 2])]), wrt: [x] };
    }, /\(MatMul\).*1-D/);
  });
  test('a symbolic dim that may have been broadcast', () => {
    expectError((g) => {
      const x = g.input('x', F64, ['n']);
      return { of: g.op('Add', [x, g.input('y', F64, [4])]), wrt: [x] };
    }, /\(Add\).*cannot tell whether axis 0/);
  });
  test('SoftmaxCrossEntropyLoss gradient w.r.t. class weights', () => {
    expectError((g) => {
      const w = g.input('w', F64, [3]);
      const loss = g.op('SoftmaxCrossEntropyLoss', [g.input('s', F64, [2, 3]), g.input('y', DType.INT64, [2]), w]);
      return { of: loss, wrt: [w] };
    }, /class weights/);
  });
  test('wrt that is not an input or initializer, and an output that does not depend on wrt', () => {
    expectError((g) => {
      const x = g.input('x', F64, [3]);
      return { of: g.op('Exp', [x], {}, { outputs: ['e'] }), wrt: ['e'] };
    }, /neither a graph input nor an initializer/);
    expectError((g) => {
      const x = g.input('x', F64, [3]);
      g.input('unused', F64, [3]);
      return { of: g.op('Exp', [x]), wrt: ['unused'] };
    }, /does not depend on any of \[unused\]/);
  });
});
