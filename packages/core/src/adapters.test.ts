import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DType, randn, rng, runOnce, tensor, vjp } from '@fednano/onnx-graph';
import { adapterBackward, adapterForward, adapterGraph, adapterScale, initAdapters } from './adapters.js';
import type { ForwardBackwardRequest, LlmHost } from './llm-host.js';
import { type Dims, type Example, evaluateAdapters, fisherDiagonal, trainLocal } from './local-training.js';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) => {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs(a[i]! - b[i]!) <= tol * (1 + Math.abs(b[i]!)), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
};

describe('NanoAdapter closed forms agree with the graph library', () => {
  const d = 12;
  const cfg = { rank: 3, alpha: 6 };
  const rows = 5;
  const random = rng(4);
  const e = randn(DType.FLOAT, [rows, d], random);
  const A = randn(DType.FLOAT, [d, cfg.rank], random);
  const B = randn(DType.FLOAT, [cfg.rank, d], random); // non-zero, so both gradients are exercised
  const g = randn(DType.FLOAT, [rows, d], random);

  test('forward and the gradients w.r.t. A and B', async () => {
    const { graph, out } = adapterGraph(d, cfg);
    const { graph: withGrad, gradients, seeds } = vjp(graph, { of: out, wrt: ['A', 'B'] });
    const r = await runOnce(withGrad, { e, A, B, [seeds[out]!]: g });
    const { out: y, h } = adapterForward(
      e.data as Float32Array,
      rows,
      d,
      A.data as Float32Array,
      B.data as Float32Array,
      adapterScale(cfg),
    );
    close(y, r[out]!.data as Float32Array, 1e-5, 'out');
    const dA = new Float32Array(d * cfg.rank);
    const dB = new Float32Array(cfg.rank * d);
    adapterBackward(
      e.data as Float32Array,
      h,
      g.data as Float32Array,
      rows,
      d,
      B.data as Float32Array,
      adapterScale(cfg),
      dA,
      dB,
    );
    close(dA, r[gradients.A!]!.data as Float32Array, 1e-4, 'dA');
    close(dB, r[gradients.B!]!.data as Float32Array, 1e-4, 'dB');
  });

  test('a fresh adapter is the identity (B = 0) and initialisation is deterministic', () => {
    const w = initAdapters(d, cfg, 7);
    assert.ok(w.get('image.B')!.every((x) => x === 0));
    assert.ok(w.get('image.A')!.some((x) => x !== 0));
    const { out } = adapterForward(
      e.data as Float32Array,
      rows,
      d,
      w.get('image.A')!,
      w.get('image.B')!,
      adapterScale(cfg),
    );
    assert.deepEqual(Array.from(out), Array.from(e.data as Float32Array));
    assert.deepEqual(initAdapters(d, cfg, 7), w);
    assert.throws(() => initAdapters(d, { rank: 0, alpha: 1 }, 1), /rank must be an integer from 1 to 12/);
  });
});

/**
 * A stand-in LLM with a known loss: loss_b = 0.5 * sum over target positions of |e'_bt - c|^2, so the best adapter
 * maps every embedding to c. Lets the tests check optimisation and the Fisher diagonal exactly.
 */
class QuadraticHost implements LlmHost {
  calls = 0;
  constructor(
    private readonly dims: Dims,
    private readonly c: number,
  ) {}
  async info() {
    return { modelId: 'quadratic', dModel: this.dims.dModel, contextLength: this.dims.contextLength, vocabSize: 4 };
  }
  lossOf(embeds: Float32Array, targets: BigInt64Array, b: number): number {
    const { contextLength: t, dModel: d } = this.dims;
    let l = 0;
    for (let p = 0; p < t; p++)
      if (targets[b * t + p] !== -100n)
        for (let k = 0; k < d; k++) l += 0.5 * (embeds[(b * t + p) * d + k]! - this.c) ** 2;
    return l;
  }
  async forwardBackward(req: ForwardBackwardRequest) {
    this.calls++;
    const { contextLength: t, dModel: d } = this.dims;
    const sampleLoss = Float32Array.from({ length: req.batch }, (_, b) =>
      this.lossOf(req.inputsEmbeds, req.targets, b),
    );
    const grad = new Float32Array(req.inputsEmbeds.length);
    for (let b = 0; b < req.batch; b++)
      for (let p = 0; p < t; p++)
        if (req.targets[b * t + p] !== -100n)
          for (let k = 0; k < d; k++)
            grad[(b * t + p) * d + k] = req.lossWeights[b]! * (req.inputsEmbeds[(b * t + p) * d + k]! - this.c);
    return { sampleLoss, gradInputsEmbeds: grad };
  }
  async score(req: { batch: number; inputsEmbeds: Float32Array; targets: BigInt64Array; positions: number[] }) {
    const sampleLoss = Float32Array.from({ length: req.batch }, (_, b) =>
      this.lossOf(req.inputsEmbeds, req.targets, b),
    );
    // logit of token 1 = -loss, others 0: "correct" when the loss is small
    const logits = new Float32Array(req.batch * 4);
    for (let b = 0; b < req.batch; b++) logits[b * 4 + 1] = 1 - sampleLoss[b]!;
    return { sampleLoss, logits };
  }
  async close() {}
}

describe('split training with a known loss', () => {
  const dims: Dims = { imageTokens: 2, contextLength: 4, dModel: 6 };
  const cfg = { rank: 2, alpha: 4 };
  const random = rng(9);
  const examples: Example[] = Array.from({ length: 12 }, () => ({
    image: randn(DType.FLOAT, [2, 6], random).data as Float32Array,
    text: randn(DType.FLOAT, [2, 6], random).data as Float32Array,
    targets: tensor(DType.INT64, [4], [-100, 1, 1, 1]).data as BigInt64Array,
    answerPosition: 1,
    answerId: 1,
    candidates: [0, 1],
    type: 'toy',
  }));
  const host = new QuadraticHost(dims, 0.3);
  const start = initAdapters(6, cfg, 1);
  const train = { steps: 60, batchSize: 4, learningRate: 0.05, optimizer: 'adamw' as const, seed: 1 };

  test('local training lowers the loss, counts the split traffic and is deterministic', async () => {
    const a = await trainLocal(host, dims, cfg, start, examples, train);
    const b = await trainLocal(host, dims, cfg, start, examples, train);
    assert.ok(
      a.finalLoss < 0.5 * (await trainLocal(host, dims, cfg, start, examples, { ...train, steps: 1 })).finalLoss,
      `${a.finalLoss}`,
    );
    assert.deepEqual(a.weights, b.weights);
    assert.equal(a.samples, 60 * 4);
    assert.equal(a.upBytes, 60 * (4 * 4 * 6 * 4 + 4 * 4 * 8 + 4 * 4)); // embeddings + int64 targets + weights
    assert.deepEqual(start, initAdapters(6, cfg, 1), 'the global adapter is not modified');
  });

  test('FedProx with a large mu keeps the adapter near the global one', async () => {
    const free = await trainLocal(host, dims, cfg, start, examples, train);
    const prox = await trainLocal(host, dims, cfg, start, examples, { ...train, proximalMu: 100 });
    const dist = (w: Map<string, Float32Array>) =>
      Math.hypot(...[...w].flatMap(([k, v]) => Array.from(v, (x, i) => x - start.get(k)![i]!)));
    assert.ok(dist(prox.weights) < 0.5 * dist(free.weights), `${dist(prox.weights)} vs ${dist(free.weights)}`);
  });

  test('the Fisher diagonal equals the mean squared per-sample gradient (finite differences)', async () => {
    const w = (await trainLocal(host, dims, cfg, start, examples, { ...train, steps: 5 })).weights;
    const few = examples.slice(0, 5);
    const fisher = await fisherDiagonal(host, dims, cfg, w, few, { batchSize: 2 });
    const scale = adapterScale(cfg);
    // Per-sample loss as a function of one parameter, by central differences.
    const sampleLoss = (ex: Example, weights: Map<string, Float32Array>) => {
      const img = adapterForward(ex.image, 2, 6, weights.get('image.A')!, weights.get('image.B')!, scale).out;
      const txt = adapterForward(ex.text, 2, 6, weights.get('text.A')!, weights.get('text.B')!, scale).out;
      const e = new Float32Array(24);
      e.set(img);
      e.set(txt, 12);
      return host.lossOf(e, ex.targets, 0);
    };
    for (const [name, index] of [
      ['image.A', 3],
      ['text.B', 5],
      ['image.B', 0],
    ] as const) {
      let sum = 0;
      for (const ex of few) {
        const plus = new Map([...w].map(([k, v]) => [k, v.slice()]));
        const minus = new Map([...w].map(([k, v]) => [k, v.slice()]));
        plus.get(name)![index]! += 1e-2;
        minus.get(name)![index]! -= 1e-2;
        const g = (sampleLoss(ex, plus) - sampleLoss(ex, minus)) / 2e-2;
        sum += g * g;
      }
      const expected = sum / few.length;
      assert.ok(
        Math.abs(fisher.get(name)![index]! - expected) <= 1e-2 * expected + 1e-4,
        `${name}[${index}]: ${fisher.get(name)![index]} vs ${expected}`,
      );
    }
  });

  test('evaluation picks the best-scoring candidate', async () => {
    const r = await evaluateAdapters(host, dims, cfg, start, examples);
    assert.equal(r.examples, 12);
    assert.ok(r.perType.toy!.examples === 12);
    assert.ok(r.loss > 0);
  });

  test('bad inputs are refused', async () => {
    await assert.rejects(trainLocal(host, dims, cfg, start, [], train), /without examples/);
    await assert.rejects(fisherDiagonal(host, dims, cfg, start, []), /at least one example/);
  });
});
