import { rng } from '@fednano/onnx-graph';
import {
  type AdapterConfig,
  type AdapterWeights,
  adapterBackward,
  adapterForward,
  adapterScale,
  cloneWeights,
} from './adapters.js';
import { labelPrivateForwardBackward, labelPrivateRequests } from './label-private.js';
import {
  type ForwardBackwardRequest,
  type ForwardBackwardResult,
  type LlmHost,
  labelPrivateTrafficBytes,
  splitTrafficBytes,
} from './llm-host.js';
import { AdamW, clipGradNorm, type Optimizer, Sgd } from './optim.js';

/**
 * One client's side of split training. The client holds its examples as precomputed NanoEdge outputs (the encoder,
 * connector and embedding table are frozen, so image tokens and text embeddings never change), applies its
 * NanoAdapters, lets the llm-host run the frozen LLM forward and backward, and backpropagates ∂L/∂e' into the
 * adapters.
 */
export interface Example {
  /** Image tokens from the encoder and connector: [N, d]. */
  image: Float32Array;
  /** Text embeddings from the embedding table: [T - N, d]. */
  text: Float32Array;
  /** [T] next-token targets, -100 where none. */
  targets: BigInt64Array;
  /** Evaluation: the position of the answer and the ids of the closed-set candidates. */
  answerPosition: number;
  answerId: number;
  candidates: readonly number[];
  type: string;
}

export interface Dims {
  imageTokens: number;
  contextLength: number;
  dModel: number;
}

export interface LocalTrainingConfig {
  steps: number;
  batchSize: number;
  learningRate: number;
  optimizer: 'adamw' | 'sgd';
  momentum?: number;
  weightDecay?: number;
  /** Clip the adapter gradient's L2 norm (default 1). */
  clipNorm?: number;
  /** FedProx: add mu * (w - w_global) to the gradient. */
  proximalMu?: number;
  seed: number;
}

/**
 * How the client talks to the llm-host: a client's own choice, not a federation setting (so not in
 * LocalTrainingConfig, whose fields mirror the Federation schema).
 */
export interface SplitOptions {
  /**
   * Label-private mode: the host returns logits at the answer positions and the client computes the loss and its
   * gradient, so the targets never leave the client (see label-private.ts). Same gradients, more bytes per step.
   */
  labelPrivate?: boolean;
  /**
   * With labelPrivate: randomized response on the labels the gradient is computed with (label-private.ts). Each
   * example gets one randomized label per local training run (a round), drawn from the run's seed, which the llm-host
   * never sees: with this probability a uniformly drawn answer candidate replaces the true answer. 0: exact labels.
   */
  labelNoise?: number;
}

/** One split forward/backward step, normal or label-private, and the tensor bytes it put on the wire. */
async function splitStep(
  host: LlmHost,
  req: ForwardBackwardRequest,
  labelPrivate: boolean,
  gradientTargets?: BigInt64Array,
): Promise<ForwardBackwardResult & { up: number; down: number }> {
  if (!labelPrivate) return { ...(await host.forwardBackward(req)), ...splitTrafficBytes(req) };
  const info = await host.info();
  const { forward } = labelPrivateRequests(req, info.contextLength);
  return {
    ...(await labelPrivateForwardBackward(host, info, req, gradientTargets)),
    ...labelPrivateTrafficBytes(forward, info.vocabSize),
  };
}

/**
 * Per example, the targets its gradients use under label noise: the answer token replaced, with probability `rate`,
 * by a uniformly drawn candidate. Drawn once per call (one local training run), so repeated steps on an example
 * reveal the same randomized label, not fresh samples of the truth.
 */
export function randomizedTargets(
  examples: readonly Example[],
  rate: number,
  random: () => number,
): Map<Example, BigInt64Array> {
  if (!(rate >= 0 && rate <= 1)) throw new Error(`labelNoise must be in [0, 1], got ${rate}`);
  const out = new Map<Example, BigInt64Array>();
  for (const ex of examples) {
    const targets = new BigInt64Array(ex.targets);
    if (random() < rate && ex.candidates.length > 0) {
      const pick = ex.candidates[Math.floor(random() * ex.candidates.length)]!;
      for (let p = 0; p < targets.length; p++) if (targets[p] === BigInt(ex.answerId)) targets[p] = BigInt(pick);
    }
    out.set(ex, targets);
  }
  return out;
}

export interface LocalTrainingResult {
  weights: AdapterWeights;
  steps: number;
  samples: number;
  meanLoss: number;
  finalLoss: number;
  /** Split-training traffic: bytes of embeddings/targets sent up and gradients/losses sent down. */
  upBytes: number;
  downBytes: number;
}

/** Builds adapted inputs_embeds [B, T, d] for the given examples; returns them with the adapter activations. */
function adaptBatch(batch: readonly Example[], dims: Dims, w: AdapterWeights, scale: number) {
  const { imageTokens: n, contextLength: t, dModel: d } = dims;
  const b = batch.length;
  const image = new Float32Array(b * n * d);
  const text = new Float32Array(b * (t - n) * d);
  batch.forEach((ex, i) => {
    image.set(ex.image, i * n * d);
    text.set(ex.text, i * (t - n) * d);
  });
  const img = adapterForward(image, b * n, d, w.get('image.A')!, w.get('image.B')!, scale);
  const txt = adapterForward(text, b * (t - n), d, w.get('text.A')!, w.get('text.B')!, scale);
  const embeds = new Float32Array(b * t * d);
  const targets = new BigInt64Array(b * t);
  for (let i = 0; i < b; i++) {
    embeds.set(img.out.subarray(i * n * d, (i + 1) * n * d), i * t * d);
    embeds.set(txt.out.subarray(i * (t - n) * d, (i + 1) * (t - n) * d), i * t * d + n * d);
    targets.set(batch[i]!.targets, i * t);
  }
  return { image, text, img, txt, embeds, targets };
}

/** Splits ∂L/∂e' [B, T, d] into the image and text parts and accumulates adapter gradients into grads. */
function backpropagate(
  a: ReturnType<typeof adaptBatch>,
  grad: Float32Array,
  b: number,
  dims: Dims,
  w: AdapterWeights,
  scale: number,
  grads: AdapterWeights,
): void {
  const { imageTokens: n, contextLength: t, dModel: d } = dims;
  const gImage = new Float32Array(b * n * d);
  const gText = new Float32Array(b * (t - n) * d);
  for (let i = 0; i < b; i++) {
    gImage.set(grad.subarray(i * t * d, i * t * d + n * d), i * n * d);
    gText.set(grad.subarray(i * t * d + n * d, (i + 1) * t * d), i * (t - n) * d);
  }
  adapterBackward(
    a.image,
    a.img.h,
    gImage,
    b * n,
    d,
    w.get('image.B')!,
    scale,
    grads.get('image.A')!,
    grads.get('image.B')!,
  );
  adapterBackward(
    a.text,
    a.txt.h,
    gText,
    b * (t - n),
    d,
    w.get('text.B')!,
    scale,
    grads.get('text.A')!,
    grads.get('text.B')!,
  );
}

const zerosLike = (w: AdapterWeights): AdapterWeights =>
  new Map([...w].map(([k, v]) => [k, new Float32Array(v.length)]));

function countTargets(targets: BigInt64Array): number {
  let n = 0;
  for (const t of targets) if (t !== -100n) n++;
  return n;
}

/** The optimizer a training config asks for. */
export function makeOptimizer(cfg: LocalTrainingConfig): Optimizer {
  return cfg.optimizer === 'sgd'
    ? new Sgd({ lr: cfg.learningRate, momentum: cfg.momentum ?? 0.9, weightDecay: cfg.weightDecay ?? 0 })
    : new AdamW({ lr: cfg.learningRate, weightDecay: cfg.weightDecay ?? 0, decays: () => true });
}

/** A minibatch drawn with replacement (deterministic given the generator). */
export function sampleBatch<T>(items: readonly T[], size: number, random: () => number): T[] {
  return Array.from({ length: Math.min(size, items.length) }, () => items[Math.floor(random() * items.length)]!);
}

/** Closed-set answers: per example, the candidate with the highest logit; tallied per question type. */
export class AnswerTally {
  private readonly perType: EvaluationResult['perType'] = {};
  private correct = 0;
  private count = 0;
  private lossSum = 0;

  /** logits[offset + id] is the logit of token id at the example's answer position. */
  add(ex: Example, logits: Float32Array, offset: number, loss: number): void {
    let best = -1;
    let bestLogit = Number.NEGATIVE_INFINITY;
    for (const c of ex.candidates) {
      const l = logits[offset + c]!;
      if (l > bestLogit) [best, bestLogit] = [c, l];
    }
    const s = (this.perType[ex.type] ??= { examples: 0, correct: 0 });
    s.examples++;
    this.count++;
    this.lossSum += loss;
    if (best === ex.answerId) {
      s.correct++;
      this.correct++;
    }
  }

  result(): EvaluationResult {
    return {
      examples: this.count,
      accuracy: this.count ? this.correct / this.count : 0,
      loss: this.lossSum / Math.max(1, this.count),
      perType: this.perType,
    };
  }
}

/** The randomized gradient targets of a run with label noise (same seed, same examples: the same labels). */
function labelNoiseTargets(examples: readonly Example[], o: SplitOptions & { seed?: number }) {
  if (!o.labelPrivate || !o.labelNoise) return undefined;
  if (o.seed === undefined) throw new Error('label noise needs the local training seed');
  return randomizedTargets(examples, o.labelNoise, rng(o.seed ^ 0x5eed));
}

const concatTargets = (rows: BigInt64Array[]): BigInt64Array => {
  const out = new BigInt64Array(rows.reduce((n, r) => n + r.length, 0));
  let at = 0;
  for (const r of rows) {
    out.set(r, at);
    at += r.length;
  }
  return out;
};

/** Local training of the adapters from `start` (the global adapters) on this client's examples. */
export async function trainLocal(
  host: LlmHost,
  dims: Dims,
  adapter: AdapterConfig,
  start: AdapterWeights,
  examples: readonly Example[],
  cfg: LocalTrainingConfig & SplitOptions,
  onStep?: (step: number, loss: number) => void,
): Promise<LocalTrainingResult> {
  if (examples.length === 0) throw new Error('a client without examples cannot train');
  const w = cloneWeights(start);
  const scale = adapterScale(adapter);
  const optimizer = makeOptimizer(cfg);
  const random = rng(cfg.seed);
  const noise = labelNoiseTargets(examples, cfg);
  const losses: number[] = [];
  let up = 0;
  let down = 0;
  let samples = 0;
  for (let step = 0; step < cfg.steps; step++) {
    const batch = sampleBatch(examples, cfg.batchSize, random);
    const a = adaptBatch(batch, dims, w, scale);
    const tokens = Math.max(1, countTargets(a.targets));
    const req = {
      batch: batch.length,
      inputsEmbeds: a.embeds,
      targets: a.targets,
      lossWeights: new Float32Array(batch.length).fill(1 / tokens),
    };
    const gradientTargets = noise && concatTargets(batch.map((ex) => noise.get(ex)!));
    const res = await splitStep(host, req, cfg.labelPrivate ?? false, gradientTargets);
    up += res.up;
    down += res.down;
    const loss = res.sampleLoss.reduce((s, x) => s + x, 0) / tokens;
    if (!Number.isFinite(loss)) throw new Error(`local training diverged at step ${step}: loss ${loss}`);
    losses.push(loss);
    onStep?.(step, loss);
    samples += batch.length;
    const grads = zerosLike(w);
    backpropagate(a, res.gradInputsEmbeds, batch.length, dims, w, scale, grads);
    if (cfg.proximalMu)
      for (const [k, g] of grads) {
        const wk = w.get(k)!;
        const s = start.get(k)!;
        for (let i = 0; i < g.length; i++) g[i]! += cfg.proximalMu * (wk[i]! - s[i]!);
      }
    clipGradNorm(grads, cfg.clipNorm ?? 1);
    optimizer.step(w, grads);
  }
  return {
    weights: w,
    steps: cfg.steps,
    samples,
    meanLoss: losses.reduce((s, x) => s + x, 0) / losses.length,
    finalLoss: losses.at(-1)!,
    upBytes: up,
    downBytes: down,
  };
}

/**
 * Diagonal empirical Fisher of the adapter parameters: the mean over samples of the squared per-sample gradient of
 * that sample's loss. One host call gives every sample's ∂L_b/∂e'_b (samples do not interact), then each sample's
 * adapter gradient is formed on its own rows.
 */
export async function fisherDiagonal(
  host: LlmHost,
  dims: Dims,
  adapter: AdapterConfig,
  weights: AdapterWeights,
  examples: readonly Example[],
  options: {
    maxSamples?: number;
    batchSize?: number;
    /** With labelNoise: the local training run's seed, so the Fisher pass reuses the same randomized labels. */
    seed?: number;
  } & SplitOptions = {},
): Promise<AdapterWeights> {
  const scale = adapterScale(adapter);
  const noise = labelNoiseTargets(examples, options);
  const use = examples.slice(0, options.maxSamples ?? examples.length);
  if (use.length === 0) throw new Error('the Fisher diagonal needs at least one example');
  const fisher = zerosLike(weights);
  const chunk = options.batchSize ?? 32;
  for (let start = 0; start < use.length; start += chunk) {
    const batch = use.slice(start, start + chunk);
    const a = adaptBatch(batch, dims, weights, scale);
    const req = {
      batch: batch.length,
      inputsEmbeds: a.embeds,
      targets: a.targets,
      lossWeights: new Float32Array(batch.length).fill(1),
    };
    const gradientTargets = noise && concatTargets(batch.map((ex) => noise.get(ex)!));
    const res = await splitStep(host, req, options.labelPrivate ?? false, gradientTargets);
    for (let i = 0; i < batch.length; i++) {
      const one = adaptBatch([batch[i]!], dims, weights, scale);
      const t = dims.contextLength * dims.dModel;
      const g = zerosLike(weights);
      backpropagate(one, res.gradInputsEmbeds.subarray(i * t, (i + 1) * t), 1, dims, weights, scale, g);
      for (const [k, gk] of g) {
        const f = fisher.get(k)!;
        for (let j = 0; j < gk.length; j++) f[j]! += gk[j]! * gk[j]!;
      }
    }
  }
  for (const f of fisher.values()) for (let j = 0; j < f.length; j++) f[j]! /= use.length;
  return fisher;
}

export interface EvaluationResult {
  examples: number;
  accuracy: number;
  /** Mean NLL of the correct answer. */
  loss: number;
  perType: Record<string, { examples: number; correct: number }>;
}

/** Closed-set accuracy with the given adapters: the candidate with the highest logit at the answer position. */
export async function evaluateAdapters(
  host: LlmHost,
  dims: Dims,
  adapter: AdapterConfig,
  weights: AdapterWeights,
  examples: readonly Example[],
  batchSize = 64,
): Promise<EvaluationResult> {
  const scale = adapterScale(adapter);
  const vocab = (await host.info()).vocabSize;
  const tally = new AnswerTally();
  for (let start = 0; start < examples.length; start += batchSize) {
    const batch = examples.slice(start, start + batchSize);
    const a = adaptBatch(batch, dims, weights, scale);
    const res = await host.score({
      batch: batch.length,
      inputsEmbeds: a.embeds,
      targets: a.targets,
      positions: batch.map((e) => e.answerPosition),
    });
    batch.forEach((ex, i) => {
      tally.add(ex, res.logits, i * vocab, res.sampleLoss[i]!);
    });
  }
  return tally.result();
}
