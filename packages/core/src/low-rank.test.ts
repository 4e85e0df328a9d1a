import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gaussian, rng } from '@fednano/onnx-graph';
import { factorize, lowRankProduct, svd } from './low-rank.js';

const random = (n: number, seed: number) => {
  const normal = gaussian(rng(seed));
  return Float32Array.from({ length: n }, () => normal());
};
const frobenius = (x: Float64Array, y: Float64Array) => Math.sqrt(x.reduce((s, v, i) => s + (v - y[i]!) ** 2, 0));
const norm = (x: Float64Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0));

/** Asserts the columns of a row-major d×r matrix are orthonormal. */
function assertOrthonormal(A: Float32Array, d: number, r: number) {
  for (let p = 0; p < r; p++)
    for (let q = p; q < r; q++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += A[i * r + p]! * A[i * r + q]!;
      assert.ok(Math.abs(s - (p === q ? 1 : 0)) < 1e-5, `columns ${p}, ${q}: ${s}`);
    }
}

describe('low-rank algebra', () => {
  test('svd reconstructs the matrix with orthonormal singular vectors, values descending', () => {
    const n = 12;
    const M = Float64Array.from(random(n * n, 1));
    const { s, u, v } = svd(M, n);
    const back = new Float64Array(n * n);
    for (let j = 0; j < n; j++)
      for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) back[i * n + k]! += s[j]! * u[j]![i]! * v[j]![k]!;
    assert.ok(frobenius(back, M) < 1e-9 * norm(M));
    for (let j = 1; j < n; j++) assert.ok(s[j]! <= s[j - 1]!);
    for (let p = 0; p < n; p++)
      for (let q = 0; q < n; q++) {
        const dot = (x: Float64Array, y: Float64Array) => x.reduce((a, xi, i) => a + xi * y[i]!, 0);
        assert.ok(Math.abs(dot(u[p]!, u[q]!) - (p === q ? 1 : 0)) < 1e-9);
        assert.ok(Math.abs(dot(v[p]!, v[q]!) - (p === q ? 1 : 0)) < 1e-9);
      }
  });

  test('factorize recovers a rank-r product exactly, at rank r and above, with orthonormal A', () => {
    const d = 16;
    const r = 3;
    const P = lowRankProduct(random(d * r, 2), random(r * d, 3), d, 0.7);
    for (const rank of [r, 8]) {
      const f = factorize(P, d, rank, 2.5);
      assert.ok(frobenius(lowRankProduct(f.A, f.B, d, 2.5), P) < 1e-5 * norm(P), `rank ${rank}`);
      assertOrthonormal(f.A, d, rank);
    }
  });

  test('truncation error is the Eckart–Young bound: the norm of the dropped singular values', () => {
    const d = 10;
    // M = Σ σ_j q_j w_jᵀ with orthonormal q, w (Gram–Schmidt of random vectors) and known σ.
    const orthonormal = (seed: number) => {
      const f = factorize(Float64Array.from(random(d * d, seed)), d, d, 1);
      return Array.from({ length: d }, (_, j) => Float64Array.from({ length: d }, (_, i) => f.A[i * d + j]!));
    };
    const q = orthonormal(4);
    const w = orthonormal(5);
    const sigma = [9, 7, 5, 3, 2, 1, 0.5, 0.25, 0.1, 0.05];
    const M = new Float64Array(d * d);
    sigma.forEach((s, j) => {
      for (let i = 0; i < d; i++) for (let k = 0; k < d; k++) M[i * d + k]! += s * q[j]![i]! * w[j]![k]!;
    });
    for (const r of [1, 3, 6]) {
      const f = factorize(M, d, r, 1);
      const bound = Math.sqrt(sigma.slice(r).reduce((a, s) => a + s * s, 0));
      const err = frobenius(lowRankProduct(f.A, f.B, d, 1), M);
      assert.ok(Math.abs(err - bound) < 1e-5, `rank ${r}: error ${err}, bound ${bound}`);
    }
  });

  test('a rank-deficient product keeps A orthonormal, completed from the given columns, with zero rows of B', () => {
    const d = 8;
    const completion = random(d * 4, 6);
    const f = factorize(new Float64Array(d * d), d, 4, 2, completion);
    assertOrthonormal(f.A, d, 4);
    assert.ok(f.B.every((x) => x === 0));
    // The completed columns span the completion's columns (Gram–Schmidt of them, in order).
    const first = Float64Array.from({ length: d }, (_, i) => completion[i * 4]!);
    const a0 = Float64Array.from({ length: d }, (_, i) => f.A[i * 4]!);
    const cos = a0.reduce((s, x, i) => s + x * first[i]!, 0) / norm(first);
    assert.ok(Math.abs(Math.abs(cos) - 1) < 1e-6);
  });

  test('sizes are checked', () => {
    assert.throws(() => lowRankProduct(new Float32Array(5), new Float32Array(8), 4, 1), /not d×r and r×d/);
    assert.throws(() => factorize(new Float64Array(16), 4, 5, 1), /rank must be an integer from 1 to 4/);
  });
});
