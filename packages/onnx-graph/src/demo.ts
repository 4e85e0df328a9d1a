/**
 * npm run demo — what the graph library does, end to end, in about ten seconds:
 *  1. builds a small transformer language model as an ONNX graph;
 *  2. appends its reverse-mode gradient with vjp() (standard ONNX operators only);
 *  3. trains it for a few steps in an ONNX Runtime worker thread, feeding updated weights back in;
 *  4. checks the gradient rules against float64 central finite differences.
 */
import { DType } from './dtype.js';
import { gradCheck } from './gradcheck.js';
import { Graph } from './graph.js';
import { buildLanguageModel, type LanguageModelConfig, seededInit } from './nn.js';
import { WorkerSession } from './session/worker-session.js';
import { rng, type Tensor, tensor } from './tensor.js';
import { vjp } from './vjp.js';

const out = (line = '') => process.stdout.write(`${line}\n`);

const config: LanguageModelConfig = {
  vocabSize: 24,
  dModel: 32,
  heads: 4,
  layers: 2,
  seqLength: 16,
  mlpRatio: 4,
  initStd: 0.1,
};
const BATCH = 8;

/** Sequences that count upwards modulo the vocabulary from a random start: learnable, so the loss must fall. */
function batch(random: () => number): { tokens: Tensor; targets: Tensor } {
  const ids: number[] = [];
  const next: number[] = [];
  for (let b = 0; b < BATCH; b++) {
    const start = Math.floor(random() * config.vocabSize);
    for (let t = 0; t < config.seqLength; t++) {
      ids.push((start + t) % config.vocabSize);
      next.push((start + t + 1) % config.vocabSize);
    }
  }
  const dims = [BATCH, config.seqLength];
  return { tokens: tensor(DType.INT64, dims, ids), targets: tensor(DType.INT64, dims, next) };
}

async function train(): Promise<void> {
  const g = new Graph({ name: 'demo_lm' });
  const lm = buildLanguageModel(g, config, seededInit(1), BATCH);
  g.output(lm.loss);
  const { graph, gradients } = vjp(g, { of: lm.loss, wrt: lm.params, promoteInitializers: true });
  const weights = new Map(lm.params.map((p) => [p, g.initializers.get(p)!]));
  const count = [...weights.values()].reduce((n, t) => n + t.data.length, 0);
  out(
    `1. built a ${config.layers}-layer transformer LM: d=${config.dModel}, ${config.heads} heads, vocab ${config.vocabSize}`,
  );
  out(`   ${count.toLocaleString('en')} parameters, forward graph ${g.nodes.length} nodes`);
  out(
    `2. vjp(): forward+backward graph ${graph.nodes.length} nodes, gradients for ${lm.params.length} parameter tensors`,
  );

  const session = await WorkerSession.create(graph, { intraOpThreads: 2 });
  const random = rng(7);
  const lr = 3e-3;
  const moments = new Map(
    [...weights].map(([k, w]) => [k, [new Float32Array(w.data.length), new Float32Array(w.data.length)]]),
  );
  out('3. training with Adam in an ONNX Runtime worker thread (loss should fall from ln(24) = 3.18):');
  const started = performance.now();
  const steps = 60;
  for (let step = 1; step <= steps; step++) {
    const feeds: Record<string, Tensor> = { ...batch(random) };
    for (const [k, w] of weights) feeds[k] = w;
    const results = await session.run(feeds);
    const loss = Number(results[lm.loss]!.data[0]);
    for (const [k, w] of weights)
      adam(w.data as Float32Array, results[gradients[k]!]!.data as Float32Array, moments.get(k)!, step, lr);
    if (step === 1 || step % 10 === 0) out(`   step ${String(step).padStart(3)}  loss ${loss.toFixed(4)}`);
  }
  await session.close();
  out(`   ${steps} steps in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

function adam(w: Float32Array, grad: Float32Array, [m, v]: Float32Array[], step: number, lr: number): void {
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const c1 = 1 - b1 ** step;
  const c2 = 1 - b2 ** step;
  for (let i = 0; i < w.length; i++) {
    m![i] = b1 * m![i]! + (1 - b1) * grad[i]!;
    v![i] = b2 * v![i]! + (1 - b2) * grad[i]! * grad[i]!;
    w[i]! -= (lr * (m![i]! / c1)) / (Math.sqrt(v![i]! / c2) + eps);
  }
}

async function check(): Promise<void> {
  const g = new Graph({ name: 'demo_check' });
  const small: LanguageModelConfig = {
    ...config,
    dModel: 16,
    heads: 2,
    seqLength: 6,
    vocabSize: 11,
    initStd: 0.3,
    gelu: 'tanh-decomposed',
  };
  const lm = buildLanguageModel(g, small, seededInit(3, DType.DOUBLE), 2);
  g.output(lm.loss);
  const { tokens, targets } = {
    tokens: tensor(DType.INT64, [2, 6], [1, 5, 2, 9, 0, 3, 4, 4, 7, 10, 6, 8]),
    targets: tensor(DType.INT64, [2, 6], [5, 2, 9, 0, 3, -100, 4, 7, 10, 6, 8, -100]),
  };
  const report = await gradCheck(g, { of: lm.loss, wrt: lm.params, feeds: { tokens, targets }, maxCoordinates: 8 });
  out('4. gradient check against float64 central finite differences (all parameter tensors, 8 coordinates each):');
  out(
    `   ${report.checked} coordinates, max abs error ${report.maxAbsError.toExponential(2)}, max rel error ${report.maxRelError.toExponential(2)}: ${report.ok ? 'PASS' : 'FAIL'}`,
  );
  if (!report.ok) process.exitCode = 1;
}

await train();
await check();
