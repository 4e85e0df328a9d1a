import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AdamW, clipGradNorm, cosineSchedule, type Params, Sgd } from './optim.js';

const p = (values: number[]): Params => new Map([['w.weight', Float32Array.from(values)]]);
const close = (a: ArrayLike<number>, b: number[], tol = 1e-6) =>
  b.forEach((x, i) => {
    assert.ok(Math.abs(a[i]! - x) < tol, `index ${i}: ${a[i]} vs ${x}`);
  });

describe('optimizers, checked against hand-computed steps', () => {
  test('SGD: w - lr * g', () => {
    const w = p([1, -2]);
    new Sgd({ lr: 0.1 }).step(w, p([0.5, 1]));
    close(w.get('w.weight')!, [0.95, -2.1]);
  });
  test('SGD with momentum 0.9: second step uses v = 0.9 v + g', () => {
    const w = p([1]);
    const opt = new Sgd({ lr: 0.1, momentum: 0.9 });
    opt.step(w, p([1])); // v = 1, w = 0.9
    opt.step(w, p([1])); // v = 1.9, w = 0.71
    close(w.get('w.weight')!, [0.71]);
  });
  test('AdamW: the first step moves each weight by lr in the sign of its gradient, decay is decoupled', () => {
    const w = p([1, -1]);
    new AdamW({ lr: 0.01, weightDecay: 0.1 }).step(w, p([3, -0.002]));
    // m/c1 = g, v/c2 = g^2 -> step lr * g/|g|; decay multiplies by 1 - lr*wd first
    close(w.get('w.weight')!, [1 * (1 - 0.001) - 0.01, -1 * (1 - 0.001) + 0.01], 1e-5);
  });
  test('AdamW minimises a quadratic', () => {
    const w = p([5, -3]);
    const opt = new AdamW({ lr: 0.1 });
    for (let i = 0; i < 500; i++) {
      const x = w.get('w.weight')!;
      opt.step(w, p([2 * (x[0]! - 1), 2 * (x[1]! + 2)]));
    }
    close(w.get('w.weight')!, [1, -2], 1e-2);
  });
  test('a missing or misshapen gradient is an error', () => {
    assert.throws(() => new Sgd({ lr: 1 }).step(p([1]), new Map()), /no gradient for parameter 'w.weight'/);
    assert.throws(() => new AdamW({ lr: 1 }).step(p([1]), p([1, 2])), /has 2 values, the parameter 1/);
  });
});

describe('gradient clipping and schedules', () => {
  test('clips the joint norm and reports the norm before', () => {
    const g: Params = new Map([
      ['a', Float32Array.from([3])],
      ['b', Float32Array.from([4])],
    ]);
    assert.equal(clipGradNorm(g, 1), 5);
    close(g.get('a')!, [0.6]);
    close(g.get('b')!, [0.8]);
    assert.ok(Math.abs(clipGradNorm(g, 10) - 1) < 1e-6, 'already within the limit: unchanged');
    close(g.get('a')!, [0.6]);
  });
  test('cosine with warm-up', () => {
    assert.equal(cosineSchedule(0, 100, 1, 10), 0.1);
    assert.equal(cosineSchedule(9, 100, 1, 10), 1);
    assert.ok(Math.abs(cosineSchedule(55, 100, 1, 10) - 0.5) < 1e-12);
    assert.equal(cosineSchedule(100, 100, 1, 10, 0.1), 0.1);
  });
});
