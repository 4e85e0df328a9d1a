import type {
  BackwardLogitsRequest,
  ForwardBackwardRequest,
  ForwardBackwardResult,
  ForwardLogitsRequest,
  LlmHost,
  LlmHostInfo,
} from './llm-host.js';

/**
 * Label-private split training: the same step as the host's ForwardBackward, but the targets never leave the client.
 * The host returns the logits at the answer positions (ForwardLogits); the client computes each sample's NLL and
 * d(Σ_b w_b · loss_b)/d(logits) itself; the host backpropagates that into the embeddings (BackwardLogits). The result
 * equals ForwardBackward's for the same request, so training code can use either.
 *
 * What the host still sees: the adapted embeddings and which positions are answers (hence each answer's length).
 * Embeddings after a sample's last answer position are sent as zeros: causal attention means no answer logit depends
 * on them, and for a single-token answer (the VQA layout) the position after it holds the answer token's own
 * embedding, which would give the answer away. Earlier tokens of a multi-token answer are inputs to the later ones
 * (teacher forcing) and so remain visible as embeddings.
 */

export interface AnswerSlots {
  /** K: the most answer positions of any sample in the batch. */
  answers: number;
  /** [batch, K] positions with a target, then -1. */
  positions: BigInt64Array;
  /** [batch, K] the target token at each position (-1 in unused slots); stays on the client. */
  labels: Int32Array;
}

/** The positions with a target (not ignoreIndex) in each sample's row of targets [batch, t]. */
export function answerSlots(targets: BigInt64Array, batch: number, t: number, ignoreIndex = -100n): AnswerSlots {
  const perSample: number[][] = [];
  for (let b = 0; b < batch; b++) {
    const rows: number[] = [];
    for (let p = 0; p < t; p++) if (targets[b * t + p] !== ignoreIndex) rows.push(p);
    perSample.push(rows);
  }
  // At least one slot, so that a batch without targets is still a valid (all-padding) request.
  const answers = Math.max(1, ...perSample.map((r) => r.length));
  const positions = new BigInt64Array(batch * answers).fill(-1n);
  const labels = new Int32Array(batch * answers).fill(-1);
  perSample.forEach((rows, b) => {
    rows.forEach((p, k) => {
      positions[b * answers + k] = BigInt(p);
      labels[b * answers + k] = Number(targets[b * t + p]);
    });
  });
  return { answers, positions, labels };
}

/**
 * Softmax cross-entropy at the answer slots: per-sample summed NLL, and the gradient of Σ_b weights[b] · loss_b with
 * respect to the logits [batch, K, V] (w_b · (softmax - onehot) in used slots, 0 in unused ones). Float64 inside.
 */
export function answerLoss(
  logits: Float32Array,
  slots: AnswerSlots,
  batch: number,
  vocab: number,
  weights: Float32Array,
  /** Labels the gradient is computed with ([batch, K], as slots.labels): randomized ones in label-noise mode. */
  gradientLabels: Int32Array = slots.labels,
): { sampleLoss: Float32Array; logitsGrad: Float32Array } {
  const k = slots.answers;
  if (logits.length !== batch * k * vocab)
    throw new Error(`logits has ${logits.length} values, expected ${batch}x${k}x${vocab}`);
  const sampleLoss = new Float32Array(batch);
  const logitsGrad = new Float32Array(batch * k * vocab);
  for (let b = 0; b < batch; b++) {
    let loss = 0;
    for (let j = 0; j < k; j++) {
      const y = slots.labels[b * k + j]!;
      if (y < 0) continue;
      if (y >= vocab) throw new Error(`target ${y} of sample ${b} is not a token id in 0..${vocab - 1}`);
      const row = (b * k + j) * vocab;
      let max = Number.NEGATIVE_INFINITY;
      for (let c = 0; c < vocab; c++) max = Math.max(max, logits[row + c]!);
      let sum = 0;
      for (let c = 0; c < vocab; c++) sum += Math.exp(logits[row + c]! - max);
      const logSum = max + Math.log(sum);
      loss += logSum - logits[row + y]!;
      const w = weights[b]!;
      for (let c = 0; c < vocab; c++) logitsGrad[row + c] = w * Math.exp(logits[row + c]! - logSum);
      const g = gradientLabels[b * k + j]!;
      if (!(g >= 0 && g < vocab)) throw new Error(`gradient label ${g} of sample ${b} is not a token id`);
      logitsGrad[row + g]! -= w;
    }
    sampleLoss[b] = loss;
  }
  return { sampleLoss, logitsGrad };
}

/** Copy of inputs_embeds [batch, t, d] with every position after a sample's last answer position set to zero. */
export function hideAfterAnswers(embeds: Float32Array, slots: AnswerSlots, batch: number, t: number): Float32Array {
  const d = embeds.length / (batch * t);
  const out = new Float32Array(embeds);
  for (let b = 0; b < batch; b++) {
    let last = -1;
    for (let j = 0; j < slots.answers; j++) last = Math.max(last, Number(slots.positions[b * slots.answers + j]));
    out.fill(0, (b * t + last + 1) * d, (b + 1) * t * d);
  }
  return out;
}

/** The label-private requests the host gets for one ForwardBackward-shaped request; the targets are not in them. */
export function labelPrivateRequests(
  req: ForwardBackwardRequest,
  contextLength: number,
): { forward: ForwardLogitsRequest; slots: AnswerSlots } {
  const slots = answerSlots(req.targets, req.batch, contextLength);
  const forward: ForwardLogitsRequest = {
    batch: req.batch,
    answers: slots.answers,
    inputsEmbeds: hideAfterAnswers(req.inputsEmbeds, slots, req.batch, contextLength),
    positions: slots.positions,
  };
  return { forward, slots };
}

/**
 * ForwardBackward without sending the targets: two host calls (ForwardLogits, BackwardLogits) and the loss on the
 * client. Same inputs and result as host.forwardBackward(req), except that with `gradientTargets` (label noise) the
 * gradient is that of the loss against those targets; the returned losses are always against the true ones.
 */
export async function labelPrivateForwardBackward(
  host: LlmHost,
  info: Pick<LlmHostInfo, 'contextLength' | 'vocabSize'>,
  req: ForwardBackwardRequest,
  gradientTargets?: BigInt64Array,
): Promise<ForwardBackwardResult> {
  if (!host.forwardLogits || !host.backwardLogits)
    throw new Error('label-private training needs an llm-host that serves ForwardLogits and BackwardLogits');
  const { forward, slots } = labelPrivateRequests(req, info.contextLength);
  const { logits } = await host.forwardLogits(forward);
  const gradientLabels = gradientTargets
    ? answerSlots(gradientTargets, req.batch, info.contextLength).labels
    : slots.labels;
  if (gradientLabels.length !== slots.labels.length)
    throw new Error('gradient targets must have their answers at the same positions as the targets');
  const { sampleLoss, logitsGrad } = answerLoss(
    logits,
    slots,
    req.batch,
    info.vocabSize,
    req.lossWeights,
    gradientLabels,
  );
  const backward: BackwardLogitsRequest = { ...forward, logitsGrad };
  const { gradInputsEmbeds } = await host.backwardLogits(backward);
  return { sampleLoss, gradInputsEmbeds };
}

/**
 * What a curious host reads from a label-private step: the gradient it receives is w·(softmax − onehot(label)), so
 * its only negative entry in a used slot is the label. Exposed for the tests and docs/security.md, which show that
 * label-private mode alone hides the answers from the requests but not from the host's arithmetic.
 */
export function labelsFromLogitsGradient(logitsGrad: Float32Array, rows: number, vocab: number): Int32Array {
  const out = new Int32Array(rows).fill(-1);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    let at = -1;
    for (let c = 0; c < vocab; c++)
      if (logitsGrad[r * vocab + c]! < best) {
        best = logitsGrad[r * vocab + c]!;
        at = c;
      }
    out[r] = at;
  }
  return out;
}

/**
 * Label noise by randomized response over an example's answer candidates: with probability `rate` the gradient uses
 * a uniformly drawn candidate (possibly the true answer) instead of the true answer. A host that reads the label off
 * the gradient then learns the truth with probability 1 − rate + rate/k, and each use of a label is
 * ε-label-differentially private with ε = ln(1 + (1 − rate)·k/rate) (k candidates).
 */
export function randomizedResponseEpsilon(rate: number, candidates: number): number {
  if (!(rate > 0 && rate <= 1)) throw new Error(`label noise rate must be in (0, 1], got ${rate}`);
  return Math.log(1 + ((1 - rate) * candidates) / rate);
}
