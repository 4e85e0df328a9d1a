import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { forwardBackwardKernel, scoreKernel } from './llm-kernels.js';

describe('llm kernels', () => {
  const shape = { contextLength: 2, dModel: 3, vocabSize: 5 };

  test('concat pads with zero embeddings, ignored targets and zero weights; split cuts per part', () => {
    const k = forwardBackwardKernel(shape);
    const a = {
      batch: 1,
      inputsEmbeds: new Float32Array(6).fill(1),
      targets: BigInt64Array.of(1n, 2n),
      lossWeights: Float32Array.of(3),
    };
    const b = {
      batch: 2,
      inputsEmbeds: new Float32Array(12).fill(2),
      targets: BigInt64Array.of(0n, -100n, 4n, 4n),
      lossWeights: Float32Array.of(4, 5),
    };
    const batch = k.concat([a, b], 4);
    assert.equal(batch.batch, 4);
    assert.deepEqual([...batch.inputsEmbeds.subarray(18)], [0, 0, 0, 0, 0, 0]);
    assert.deepEqual([...batch.targets], [1n, 2n, 0n, -100n, 4n, 4n, -100n, -100n]);
    assert.deepEqual([...batch.lossWeights], [3, 4, 5, 0]);
    const result = {
      sampleLoss: Float32Array.of(1, 2, 3, 9),
      gradInputsEmbeds: Float32Array.from({ length: 24 }, (_, i) => i),
    };
    const [ra, rb] = k.split(result, [a, b]);
    assert.deepEqual([...ra!.sampleLoss], [1]);
    assert.deepEqual([...rb!.sampleLoss], [2, 3]);
    assert.deepEqual([...rb!.gradInputsEmbeds], [6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]);
    const halves = [k.slice(b, 0, 1), k.slice(b, 1, 2)];
    assert.deepEqual([...halves[1]!.targets], [4n, 4n]);
    assert.deepEqual(
      [
        ...k.merge(k.split({ sampleLoss: Float32Array.of(7, 8), gradInputsEmbeds: new Float32Array(12) }, halves))
          .sampleLoss,
      ],
      [7, 8],
    );
    assert.throws(() => k.concat([a, b], 2), /cannot pad a batch of 3 samples to 2/);
  });

  test('score padding rows get position 0', () => {
    const k = scoreKernel(shape);
    const a = { batch: 1, inputsEmbeds: new Float32Array(6), targets: BigInt64Array.of(1n, 2n), positions: [1] };
    assert.deepEqual(k.concat([a], 4).positions, [1, 0, 0, 0]);
    assert.throws(() => k.validate({ ...a, positions: [0, 1] }), /positions has 2 values, expected batch = 1/);
    assert.throws(() => k.validate({ ...a, positions: [0.5] }), /position 0.5 of sample 0/);
  });

  test('validate says what is wrong with a request', () => {
    const k = forwardBackwardKernel(shape);
    const ok = {
      batch: 1,
      inputsEmbeds: new Float32Array(6),
      targets: BigInt64Array.of(-100n, 4n),
      lossWeights: Float32Array.of(1),
    };
    k.validate(ok);
    assert.throws(() => k.validate({ ...ok, batch: 0 }), /batch must be a positive integer, got 0/);
    assert.throws(
      () => k.validate({ ...ok, targets: BigInt64Array.of(1n) }),
      /targets has 1 values, expected batch x contextLength = 1x2/,
    );
    assert.throws(
      () => k.validate({ ...ok, targets: BigInt64Array.of(-1n, 0n) }),
      /targets\[0\] \(sample 0, position 0\) is -1/,
    );
    assert.throws(
      () => k.validate({ ...ok, lossWeights: Float32Array.of(1, 1) }),
      /lossWeights has 2 values, expected batch = 1/,
    );
    assert.throws(
      () => k.validate({ ...ok, inputsEmbeds: [0, 0, 0, 0, 0, 0] as unknown as Float32Array }),
      /Float32Array/,
    );
  });

  test('concat copies: the batch never aliases a request, so it may be moved to a worker', () => {
    const k = forwardBackwardKernel(shape);
    const a = {
      batch: 1,
      inputsEmbeds: new Float32Array(6),
      targets: BigInt64Array.of(1n, 2n),
      lossWeights: Float32Array.of(3),
    };
    const batch = k.concat([a], 1);
    assert.notEqual(batch.inputsEmbeds.buffer, a.inputsEmbeds.buffer);
    assert.notEqual(batch.targets.buffer, a.targets.buffer);
    assert.notEqual(batch.lossWeights.buffer, a.lossWeights.buffer);
  });
});
