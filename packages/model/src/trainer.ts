import { AdamW, clipGradNorm, cosineSchedule } from '@fednano/core';
import { type Feeds, type Tensor, vjp, WorkerSession } from '@fednano/onnx-graph';
import type { TrainingGraph, Weights } from './architecture.js';

export interface TrainOptions {
  model: TrainingGraph;
  /** Parameters to train (the others stay fixed as initializers). */
  trainable: string[];
  weights: Weights;
  /** Feeds (other than weights) for a step; called while the previous step computes. */
  batch: (step: number) => Feeds;
  steps: number;
  lr: number;
  warmup?: number;
  weightDecay?: number;
  clip?: number;
  threads?: number;
  logEvery?: number;
  onLog?: (info: { step: number; steps: number; loss: number; lr: number; gradNorm: number; seconds: number }) => void;
}

/**
 * Trains a graph's parameters with AdamW: the forward+VJP graph runs in an ONNX Runtime worker thread while the next
 * batch is built on this one; the weights are updated in place in `weights`. Returns the loss of every step.
 */
export async function train(o: TrainOptions): Promise<number[]> {
  const { graph, gradients } = vjp(o.model.graph, { of: o.model.loss, wrt: o.trainable, promoteInitializers: true });
  const session = await WorkerSession.create(graph, { intraOpThreads: o.threads ?? 2 });
  const optimizer = new AdamW({ lr: o.lr, weightDecay: o.weightDecay ?? 0.01 });
  const params = new Map(o.trainable.map((n) => [n, o.weights.get(n)!.data as Float32Array]));
  const losses: number[] = [];
  const started = performance.now();
  try {
    let next = o.batch(0);
    for (let step = 0; step < o.steps; step++) {
      const feeds: Record<string, Tensor> = { ...next };
      for (const n of o.trainable) feeds[n] = o.weights.get(n)!;
      const running = session.run(feeds, { outputs: [o.model.loss, ...o.trainable.map((n) => gradients[n]!)] });
      if (step + 1 < o.steps) next = o.batch(step + 1);
      const results = await running;
      const loss = Number(results[o.model.loss]!.data[0]);
      if (!Number.isFinite(loss)) throw new Error(`training diverged at step ${step}: loss ${loss}`);
      losses.push(loss);
      const grads = new Map(o.trainable.map((n) => [n, results[gradients[n]!]!.data as Float32Array]));
      const gradNorm = clipGradNorm(grads, o.clip ?? 1);
      optimizer.lr = cosineSchedule(step, o.steps, o.lr, o.warmup ?? Math.min(100, o.steps / 10), o.lr / 10);
      optimizer.step(params, grads);
      if (o.onLog && ((step + 1) % (o.logEvery ?? 100) === 0 || step === 0 || step + 1 === o.steps))
        o.onLog({
          step: step + 1,
          steps: o.steps,
          loss,
          lr: optimizer.lr,
          gradNorm,
          seconds: (performance.now() - started) / 1000,
        });
    }
  } finally {
    await session.close();
  }
  return losses;
}
