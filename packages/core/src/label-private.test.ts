import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rng } from '@fednano/onnx-graph';
import {
  answerLoss,
  answerSlots,
  hideAfterAnswers,
  labelPrivateForwardBackward,
  labelsFromLogitsGradient,
  randomizedResponseEpsilon,
} from './label-private.js';
import type { BackwardLogitsRequest, ForwardLogitsRequest, LlmHost } from './llm-host.js';
import { type Example, randomizedTargets } from './local-training.js';

const I = -100n;

test('answerSlots lists each sample’s target positions, padded with -1 to the longest answer', () => {
  // t = 5: sample 0 has one target (position 3), sample 1 three (0, 1, 4), sample 2 none.
  const targets = BigInt64Array.from([I, I, I, 7n, I, 2n, 3n, I, I, 9n, I, I, I, I, I]);
  const s = answerSlots(targets, 3, 5);
  assert.equal(s.answers, 3);
  assert.deepEqual([...s.positions], [3n, -1n, -1n, 0n, 1n, 4n, -1n, -1n, -1n]);
  assert.deepEqual([...s.labels], [7, -1, -1, 2, 3, 9, -1, -1, -1]);
});

test('answerLoss: summed NLL per sample, and its weighted gradient matches central differences', () => {
  const v = 6;
  const slots = {
    answers: 2,
    positions: BigInt64Array.from([4n, 5n, 2n, -1n]),
    labels: Int32Array.from([1, 5, 0, -1]),
  };
  const logits = Float32Array.from({ length: 2 * 2 * v }, (_, i) => Math.sin(i * 1.7) * 3);
  const weights = Float32Array.from([0.5, 2]);
  const { sampleLoss, logitsGrad } = answerLoss(logits, slots, 2, v, weights);
  // Direct NLL of sample 1 (one used slot, label 0).
  const row = Array.from(logits.subarray(2 * v, 3 * v));
  const lse = Math.log(row.reduce((s, x) => s + Math.exp(x), 0));
  assert.ok(Math.abs(sampleLoss[1]! - (lse - row[0]!)) < 1e-5);
  const objective = (z: Float32Array) => {
    const l = answerLoss(z, slots, 2, v, weights).sampleLoss;
    return weights[0]! * l[0]! + weights[1]! * l[1]!;
  };
  const h = 1e-2;
  for (let i = 0; i < logits.length; i++) {
    const plus = Float32Array.from(logits);
    const minus = Float32Array.from(logits);
    plus[i]! += h;
    minus[i]! -= h;
    const numeric = (objective(plus) - objective(minus)) / (2 * h);
    assert.ok(Math.abs(numeric - logitsGrad[i]!) < 2e-3, `logit ${i}: numeric ${numeric}, analytic ${logitsGrad[i]}`);
  }
  // The unused slot of sample 1 gets no gradient at all.
  assert.ok(logitsGrad.subarray(3 * v).every((g) => g === 0));
});

test('hideAfterAnswers zeroes exactly the positions after each sample’s last answer', () => {
  const t = 4;
  const d = 2;
  const embeds = Float32Array.from({ length: 2 * t * d }, (_, i) => i + 1);
  const slots = {
    answers: 2,
    positions: BigInt64Array.from([1n, -1n, 0n, 2n]),
    labels: Int32Array.from([0, -1, 0, 0]),
  };
  const out = hideAfterAnswers(embeds, slots, 2, t);
  assert.deepEqual([...out], [1, 2, 3, 4, 0, 0, 0, 0, 9, 10, 11, 12, 13, 14, 0, 0]);
  assert.equal(embeds[4], 5, 'the input is not modified');
});

test('labelPrivateForwardBackward sends no targets and hides the answer token that follows the answer position', async () => {
  const t = 4;
  const d = 2;
  const v = 3;
  const seen: (ForwardLogitsRequest | BackwardLogitsRequest)[] = [];
  // A host whose logits at position p are W · e_p (so the expected gradient is easy to state).
  const W = [1, -1, 0.5, 2, 0, -0.5]; // [v][d]
  const host: LlmHost = {
    info: async () => ({ modelId: 'fake', dModel: d, contextLength: t, vocabSize: v }),
    forwardBackward: () => assert.fail('label-private mode must not call ForwardBackward'),
    score: () => assert.fail('label-private mode must not call Score'),
    forwardLogits: async (r) => {
      seen.push(r);
      const logits = new Float32Array(r.batch * r.answers * v);
      for (let s = 0; s < r.batch * r.answers; s++) {
        const p = Number(r.positions[s]);
        if (p < 0) continue;
        const b = Math.floor(s / r.answers);
        for (let c = 0; c < v; c++)
          for (let j = 0; j < d; j++) logits[s * v + c]! += W[c * d + j]! * r.inputsEmbeds[(b * t + p) * d + j]!;
      }
      return { logits };
    },
    backwardLogits: async (r) => {
      seen.push(r);
      const grad = new Float32Array(r.batch * t * d);
      for (let s = 0; s < r.batch * r.answers; s++) {
        const p = Number(r.positions[s]);
        if (p < 0) continue;
        const b = Math.floor(s / r.answers);
        for (let c = 0; c < v; c++)
          for (let j = 0; j < d; j++) grad[(b * t + p) * d + j]! += W[c * d + j]! * r.logitsGrad[s * v + c]!;
      }
      return { gradInputsEmbeds: grad };
    },
    close: async () => {},
  };
  const inputsEmbeds = Float32Array.from({ length: t * d }, (_, i) => 0.3 * (i + 1));
  const targets = BigInt64Array.from([I, 2n, I, I]);
  const res = await labelPrivateForwardBackward(host, await host.info(), {
    batch: 1,
    inputsEmbeds,
    targets,
    lossWeights: Float32Array.from([0.5]),
  });
  assert.equal(seen.length, 2);
  for (const r of seen) {
    assert.ok(!('targets' in r), 'no request carries targets');
    assert.deepEqual([...r.positions], [1n]);
    // Position 2 holds the answer token's embedding in a VQA sequence: it must not leave the client.
    assert.deepEqual([...r.inputsEmbeds.subarray(2 * d)], [0, 0, 0, 0]);
  }
  // Reference: z = W e_1, loss = lse(z) - z[2], d/de_1 = 0.5 * W^T (softmax(z) - onehot(2)).
  const e1 = [inputsEmbeds[2]!, inputsEmbeds[3]!];
  const z = [0, 1, 2].map((c) => W[c * d]! * e1[0]! + W[c * d + 1]! * e1[1]!);
  const lse = Math.log(z.reduce((s, x) => s + Math.exp(x), 0));
  assert.ok(Math.abs(res.sampleLoss[0]! - (lse - z[2]!)) < 1e-5);
  const dz = z.map((x, c) => 0.5 * (Math.exp(x - lse) - (c === 2 ? 1 : 0)));
  for (let j = 0; j < d; j++) {
    const expected = dz.reduce((s, g, c) => s + g * W[c * d + j]!, 0);
    assert.ok(Math.abs(res.gradInputsEmbeds[2 + j]! - expected) < 1e-5);
  }
  assert.ok(res.gradInputsEmbeds.subarray(2 * d).every((g) => g === 0));
});

// ---- what the host can still learn, and label noise ---------------------------------------------------------

/** Random logits and labels for `n` single-answer samples over `v` tokens. */
function randomRows(n: number, v: number, random: () => number) {
  const slots = {
    answers: 1,
    positions: new BigInt64Array(n).fill(3n),
    labels: Int32Array.from({ length: n }, () => Math.floor(random() * v)),
  };
  const logits = Float32Array.from({ length: n * v }, () => (random() - 0.5) * 8);
  return { slots, logits, weights: new Float32Array(n).fill(1 / n) };
}

test('without label noise, a curious host reads every label off the logits gradient it receives', () => {
  const random = rng(3);
  const { slots, logits, weights } = randomRows(500, 40, random);
  const { logitsGrad } = answerLoss(logits, slots, 500, 40, weights);
  assert.deepEqual([...labelsFromLogitsGradient(logitsGrad, 500, 40)], [...slots.labels]);
});

test('label noise: the host learns the randomized label, which is the truth at rate 1 − ρ + ρ/k', () => {
  const random = rng(5);
  const n = 4000;
  const k = 8;
  const rate = 0.5;
  const t = 6;
  const examples: Example[] = Array.from({ length: n }, () => {
    const answerId = 100 + Math.floor(random() * k);
    const targets = new BigInt64Array(t).fill(-100n);
    targets[3] = BigInt(answerId);
    const candidates = Array.from({ length: k }, (_, i) => 100 + i);
    const e: Example = {
      type: 'what',
      image: new Float32Array(0),
      text: new Float32Array(0),
      targets,
      answerPosition: 3,
      answerId,
      candidates,
    };
    return e;
  });
  const noisy = randomizedTargets(examples, rate, rng(9));
  // What the host reads off the gradient is the randomized label.
  const v = 120;
  const logits = Float32Array.from({ length: n * v }, () => random() - 0.5);
  const slots = answerSlots(concat(examples.map((e) => e.targets)), n, t);
  const gradLabels = answerSlots(concat(examples.map((e) => noisy.get(e)!)), n, t).labels;
  const { logitsGrad } = answerLoss(logits, slots, n, v, new Float32Array(n).fill(1), gradLabels);
  const read = labelsFromLogitsGradient(logitsGrad, n, v);
  assert.deepEqual([...read], [...gradLabels]);
  const right = examples.filter((e, i) => read[i] === e.answerId).length / n;
  const expected = 1 - rate + rate / k; // 0.5625
  assert.ok(Math.abs(right - expected) < 0.03, `host right ${right}, expected ≈ ${expected}`);
  assert.ok(Math.abs(randomizedResponseEpsilon(rate, k) - Math.log(9)) < 1e-12);
  // The same seed gives the same randomized labels (training and the Fisher pass of a round agree).
  const again = randomizedTargets(examples, rate, rng(9));
  assert.ok(examples.every((e) => noisy.get(e)!.join() === again.get(e)!.join()));
  assert.throws(() => randomizedTargets(examples, 1.5, rng(1)), /labelNoise must be in \[0, 1\]/);
});

const concat = (rows: BigInt64Array[]) => {
  const out = new BigInt64Array(rows.reduce((s, r) => s + r.length, 0));
  rows.forEach((r, i) => {
    out.set(r, i * r.length);
  });
  return out;
};
