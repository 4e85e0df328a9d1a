import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DType } from './dtype.js';
import { gradCheck } from './gradcheck.js';
import { Graph } from './graph.js';
import { type BlockConfig, buildLanguageModel, Layers, seededInit } from './nn.js';
import { randn, rng, tensor } from './tensor.js';

/**
 * Large-ish weights so every path contributes a gradient well above the tolerances. Float64 checks use the
 * decomposed tanh-GELU (ONNX Runtime's float64 Gelu kernel rounds its constants to float32).
 */
const block: BlockConfig = { dModel: 16, heads: 2, mlpRatio: 2, initStd: 0.3, gelu: 'tanh-decomposed' };

function decoderBlockGraph(dtype: DType, shape: (number | string)[], cfg: BlockConfig, maxLength?: number) {
  const g = new Graph();
  const layers = new Layers(g, seededInit(7, dtype));
  const x = g.input('x', dtype, shape);
  const y = layers.decoderBlock(x, 'block', cfg, layers.causalMask(x, maxLength));
  g.output(y);
  return { g, y, params: layers.params };
}

describe('composite blocks match central finite differences', () => {
  test('pre-norm decoder block (causal MHA + GELU MLP), float64, w.r.t. input and all weights', async () => {
    const { g, y, params } = decoderBlockGraph(DType.DOUBLE, [2, 5, 16], block);
    const report = await gradCheck(g, { of: y, wrt: ['x', ...params], maxCoordinates: 40, seed: 3 });
    assert.ok(report.checked >= 40 * 5, `checked only ${report.checked}`);
    assert.ok(report.ok, JSON.stringify(report));
  });

  test('decoder block with exact GELU, float32 (no float64 Erf kernel in ONNX Runtime)', async () => {
    const { g, y, params } = decoderBlockGraph(DType.FLOAT, [2, 4, 16], { ...block, gelu: 'none' });
    const report = await gradCheck(g, { of: y, wrt: ['x', ...params], maxCoordinates: 6, seed: 4 });
    assert.ok(report.ok, JSON.stringify(report));
  });

  test('decoder block with symbolic batch and sequence length (mask sliced at run time)', async () => {
    const { g, y } = decoderBlockGraph(DType.DOUBLE, ['batch', 'seq', 16], block, 8);
    const x = randn(DType.DOUBLE, [3, 5, 16], rng(5));
    const report = await gradCheck(g, { of: y, wrt: ['x'], feeds: { x }, maxCoordinates: 40 });
    assert.ok(report.ok, JSON.stringify(report));
  });

  test('embedding -> 2 blocks -> LM head -> cross-entropy, float64, w.r.t. every parameter', async () => {
    const g = new Graph();
    const lm = buildLanguageModel(
      g,
      { ...block, vocabSize: 11, layers: 2, seqLength: 6 },
      seededInit(9, DType.DOUBLE),
      2,
    );
    g.output(lm.loss);
    const random = rng(2);
    const ids = Array.from({ length: 12 }, () => Math.floor(random() * 11));
    const targets = ids.map((t, i) => (i % 6 === 5 ? -100 : t)); // ignored positions exercise ignore_index
    const report = await gradCheck(g, {
      of: lm.loss,
      wrt: lm.params,
      feeds: { tokens: tensor(DType.INT64, [2, 6], ids), targets: tensor(DType.INT64, [2, 6], targets) },
      maxCoordinates: 5,
    });
    assert.ok(lm.params.length >= 2 + 2 * 12 + 3, `parameters: ${lm.params.join(', ')}`);
    assert.ok(report.ok, JSON.stringify(report));
  });
});
