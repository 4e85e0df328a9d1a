import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import onnxProto from 'onnx-proto';
import { DType } from './dtype.js';
import { Graph } from './graph.js';
import { Layers, seededInit } from './nn.js';
import { decodeModel, encodeModel, loadModel, saveModel } from './onnx-io.js';
import { Ops } from './ops-helpers.js';
import { runOnce } from './session/local.js';
import { floats, randn, rng, tensor } from './tensor.js';
import { GraphError } from './types.js';
import { vjp } from './vjp.js';

const throwsGraphError = (f: () => unknown, pattern: RegExp) =>
  assert.throws(f, (e: unknown) => e instanceof GraphError && pattern.test(e.message));

describe('shape and type inference', () => {
  test('infers broadcasting, matmul batching and reshape with 0/-1, keeping symbolic dims', () => {
    const g = new Graph();
    const o = new Ops(g);
    const x = g.input('x', DType.FLOAT, ['batch', 'seq', 8]);
    const w = g.input('w', DType.FLOAT, [8, 4]);
    const y = o.matmul(x, w);
    assert.deepEqual(g.shapeOf(y), ['batch', 'seq', 4]);
    assert.deepEqual(g.shapeOf(o.add(y, g.input('b', DType.FLOAT, [4]))), ['batch', 'seq', 4]);
    assert.deepEqual(g.shapeOf(o.reshape(y, [0, 0, 2, 2])), ['batch', 'seq', 2, 2]);
    assert.deepEqual(g.shapeOf(o.reshape(y, [-1, 4])), ['batch*seq', 4]);
    assert.deepEqual(g.shapeOf(o.reshape(g.input('s', DType.FLOAT, [6, 4]), [3, -1])), [3, 8]);
    assert.deepEqual(g.shapeOf(o.reshapeLike(o.reshape(y, [-1, 4]), y)), ['batch', 'seq', 4]);
    assert.deepEqual(g.shapeOf(o.transpose(y, [2, 0, 1])), [4, 'batch', 'seq']);
    assert.deepEqual(g.shapeOf(o.reduce('ReduceMean', y, [-1], false)), ['batch', 'seq']);
    assert.equal(g.typeOf(g.op('Equal', [y, y])).dtype, DType.BOOL);
  });

  test('errors name the node and say what is wrong', () => {
    const g = new Graph();
    const a = g.input('a', DType.FLOAT, [2, 3]);
    throwsGraphError(
      () => g.op('MatMul', [a, g.input('b', DType.FLOAT, [4, 5])], {}, { name: 'proj' }),
      /node 'proj' \(MatMul\): inner dimensions differ: \[2,3\] x \[4,5\]/,
    );
    throwsGraphError(
      () => g.op('Add', [a, g.input('c', DType.FLOAT, [4])]),
      /\(Add\): shapes \[2,3\] and \[4\] do not broadcast/,
    );
    throwsGraphError(() => g.op('Add', [a, g.input('d', DType.DOUBLE, [3])]), /different element types/);
    throwsGraphError(() => g.op('Relu', [a], { alpha: 1 }), /unknown attribute 'alpha'/);
    throwsGraphError(() => g.op('Relu', ['missing']), /input 'missing' is not defined/);
    throwsGraphError(() => g.op('FancyOp', [a]), /operator 'FancyOp' is not supported/);
    throwsGraphError(() => g.op('Softmax', [a], { axis: 5 }), /axis 5 is out of range for rank 2/);
    throwsGraphError(() => g.op('Reshape', [a, g.ints([4, -1, -1])]), /at most one -1/);
    throwsGraphError(
      () => g.op('Reshape', [a, g.ints([4, 2])]),
      /cannot reshape \[2,3\] \(6 elements\) to \[4,2\] \(8\)/,
    );
    throwsGraphError(() => g.op('Exp', [a], {}, { outputs: ['a'] }), /value 'a' is defined twice/);
    throwsGraphError(() => g.op('Transpose', [a], { perm: [0, 0] }), /not a permutation/);
    throwsGraphError(() => new Graph({ opset: 12 }), /opset 12 is not supported/);
  });

  test('inference agrees with ONNX Runtime on every output shape of a decoder block', async () => {
    const g = new Graph();
    const layers = new Layers(g, seededInit(1));
    const x = g.input('x', DType.FLOAT, [2, 5, 16]);
    const y = layers.decoderBlock(x, 'b', { dModel: 16, heads: 4 }, layers.causalMask(x));
    g.output(y);
    for (const n of g.nodes) for (const o of n.outputs) if (o && o !== y) g.output(o);
    const results = await runOnce(g, { x: randn(DType.FLOAT, [2, 5, 16], rng(1)) });
    for (const [name, t] of Object.entries(results)) assert.deepEqual(t.dims, g.shapeOf(name), name);
  });
});

test('inference agrees with ONNX Runtime on every value of a forward+VJP graph', async () => {
  const g = new Graph();
  const layers = new Layers(g, seededInit(1));
  const x = g.input('x', DType.FLOAT, [2, 5, 16]);
  const y = layers.decoderBlock(x, 'b', { dModel: 16, heads: 4 }, layers.causalMask(x));
  g.output(y);
  const { graph, seeds } = vjp(g, { of: y, wrt: ['x', ...layers.params] });
  const declared = new Set(graph.outputs.map((o) => o.name));
  for (const n of graph.nodes) for (const o of n.outputs) if (o && !declared.has(o)) graph.output(o);
  const results = await runOnce(graph, {
    x: randn(DType.FLOAT, [2, 5, 16], rng(1)),
    [seeds[y]!]: randn(DType.FLOAT, [2, 5, 16], rng(2)),
  });
  assert.ok(Object.keys(results).length > 100);
  for (const [name, t] of Object.entries(results)) assert.deepEqual(t.dims, graph.shapeOf(name), name);
});

describe('.onnx files', () => {
  test('save, load and run give the same results as the graph built in memory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'onnx-graph-'));
    try {
      const g = new Graph({ name: 'roundtrip' });
      const layers = new Layers(g, seededInit(2));
      const x = g.input('x', DType.FLOAT, ['batch', 4, 8]);
      g.output(layers.decoderBlock(x, 'b', { dModel: 8, heads: 2 }, layers.causalMask(x)));
      const path = join(dir, 'model.onnx');
      await saveModel(g, path);
      const loaded = await loadModel(path);
      assert.equal(loaded.name, 'roundtrip');
      assert.equal(loaded.nodes.length, g.nodes.length);
      assert.deepEqual(loaded.inputs, g.inputs);
      assert.deepEqual([...loaded.initializers.keys()], [...g.initializers.keys()]);
      const feeds = { x: randn(DType.FLOAT, [3, 4, 8], rng(5)) };
      const a = await runOnce(g, feeds);
      const b = await runOnce(loaded, feeds);
      assert.deepEqual(
        Array.from(Object.values(b)[0]!.data as Float32Array),
        Array.from(Object.values(a)[0]!.data as Float32Array),
      );
      assert.deepEqual(encodeModel(loaded), encodeModel(g));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('reads tensors stored as typed fields, not only raw bytes', () => {
    const { onnx } = onnxProto;
    const bytes = onnx.ModelProto.encode({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      graph: {
        name: 'typed_fields',
        input: [
          { name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'n' }, { dimValue: 2 }] } } } },
        ],
        initializer: [{ name: 'w', dataType: 1, dims: [2], floatData: [0.5, -1] }],
        node: [{ opType: 'Mul', input: ['x', 'w'], output: ['y'], name: 'scale' }],
        output: [
          { name: 'y', type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'n' }, { dimValue: 2 }] } } } },
        ],
      },
    } as onnxProto.onnx.IModelProto).finish();
    const g = decodeModel(bytes);
    assert.equal(g.opset, 17);
    assert.deepEqual(Array.from(g.initializers.get('w')!.data as Float32Array), [0.5, -1]);
    assert.deepEqual(g.shapeOf('y'), ['n', 2]);
  });

  test('a corrupt or unsupported file fails clearly', async () => {
    assert.throws(() => decodeModel(new Uint8Array([0xff, 0xff, 0xff])));
    const { onnx } = onnxProto;
    const custom = onnx.ModelProto.encode({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      graph: {
        input: [{ name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 2 }] } } } }],
        node: [{ opType: 'Attention', domain: 'com.microsoft', input: ['x'], output: ['y'], name: 'attn' }],
      },
    } as onnxProto.onnx.IModelProto).finish();
    throwsGraphError(() => decodeModel(custom), /node 'attn' \(Attention\): operators of domain 'com.microsoft'/);
    const dir = await mkdtemp(join(tmpdir(), 'onnx-graph-'));
    await writeFile(join(dir, 'bad.onnx'), 'not a model');
    await assert.rejects(loadModel(join(dir, 'bad.onnx')));
    await rm(dir, { recursive: true, force: true });
  });

  test('initializers keep their values through promotion to inputs', () => {
    const g = new Graph();
    const w = g.initializer('w', floats([2], [1, 2]));
    g.output(g.op('Neg', [w]));
    const value = g.promoteToInput('w');
    assert.deepEqual(Array.from(value.data as Float32Array), [1, 2]);
    assert.deepEqual(
      g.inputs.map((i) => i.name),
      ['w'],
    );
    throwsGraphError(() => g.promoteToInput('w'), /not an initializer/);
  });

  test('int64 and bool tensors survive encoding', async () => {
    const g = new Graph();
    const ids = g.input('ids', DType.INT64, [3]);
    const mask = g.input('mask', DType.BOOL, [3]);
    g.output(g.op('Where', [mask, ids, g.constant(tensor(DType.INT64, [], [-7]))], {}, { outputs: ['picked'] }));
    const r = await runOnce(decodeModel(encodeModel(g)), {
      ids: tensor(DType.INT64, [3], [1, 2, 3]),
      mask: tensor(DType.BOOL, [3], [1, 0, 1]),
    });
    assert.deepEqual(Array.from(r.picked!.data as BigInt64Array, Number), [1, -7, 3]);
  });
});
