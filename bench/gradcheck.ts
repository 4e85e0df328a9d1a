/**
 * npm run bench:gradcheck — full finite-difference checks (every coordinate) of the composite blocks, reporting the
 * worst errors that docs/onnx-graph.md quotes. The unit tests check sampled coordinates of the same graphs.
 */
import { DType, Graph, gradCheck, tensor } from '../packages/onnx-graph/src/index.js';
import { type BlockConfig, buildLanguageModel, Layers, seededInit } from '../packages/onnx-graph/src/nn.js';
import { printResult, printTable } from './report.js';

const block: BlockConfig = { dModel: 16, heads: 2, mlpRatio: 2, initStd: 0.3 };
const rows: (string | number)[][] = [];
const result: Record<string, number | string> = {};

async function blockCheck(label: string, key: string, dtype: DType, gelu: BlockConfig['gelu']) {
  const g = new Graph();
  const layers = new Layers(g, seededInit(7, dtype));
  const x = g.input('x', dtype, [2, 5, 16]);
  const y = layers.decoderBlock(x, 'b', { ...block, gelu }, layers.causalMask(x));
  g.output(y);
  const r = await gradCheck(g, { of: y, wrt: ['x', ...layers.params], seed: 3 });
  rows.push([label, r.checked, r.maxAbsError.toExponential(2), r.maxRelError.toExponential(2), r.ok ? 'pass' : 'FAIL']);
  result[`${key}_max_abs`] = r.maxAbsError.toExponential(2);
  result[`${key}_ok`] = r.ok ? 1 : 0;
}

await blockCheck(
  'decoder block f64 (tanh-GELU from ops), x + all weights',
  'block_f64',
  DType.DOUBLE,
  'tanh-decomposed',
);
await blockCheck('decoder block f32 (exact GELU), x + all weights', 'block_f32', DType.FLOAT, 'none');

const g = new Graph();
const lm = buildLanguageModel(
  g,
  { ...block, gelu: 'tanh-decomposed', vocabSize: 11, layers: 2, seqLength: 6 },
  seededInit(9, DType.DOUBLE),
  2,
);
g.output(lm.loss);
const ids = Array.from({ length: 12 }, (_, i) => (i * 7) % 11);
const targets = ids.map((t, i) => (i % 6 === 5 ? -100 : t));
const r = await gradCheck(g, {
  of: lm.loss,
  wrt: lm.params,
  feeds: { tokens: tensor(DType.INT64, [2, 6], ids), targets: tensor(DType.INT64, [2, 6], targets) },
});
rows.push([
  'embedding > 2 blocks > LM head > CE f64, all params',
  r.checked,
  r.maxAbsError.toExponential(2),
  r.maxRelError.toExponential(2),
  r.ok ? 'pass' : 'FAIL',
]);
result.lm_f64_max_abs = r.maxAbsError.toExponential(2);
result.lm_f64_ok = r.ok ? 1 : 0;

printTable(['check', 'coordinates', 'max abs err', 'max rel err', 'result'], rows);
printResult(result);
if (rows.some((row) => row[4] !== 'pass')) process.exitCode = 1;
