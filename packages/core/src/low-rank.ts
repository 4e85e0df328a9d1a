/**
 * Low-rank linear algebra for merging adapters of different ranks (heterogeneous-ranks.ts): the product s·A·B of a
 * NanoAdapter's factors, a singular value decomposition of that d×d product, and its best rank-r factorization
 * (Eckart–Young) back into A (d×r) and B (r×d). Matrices are row-major; sums and the SVD run in float64.
 */

/** s·A·B as a d×d row-major float64 matrix, for A: d×r and B: r×d (row-major). */
export function lowRankProduct(A: Float32Array, B: Float32Array, d: number, scale: number): Float64Array {
  const r = A.length / d;
  if (!Number.isInteger(r) || B.length !== r * d)
    throw new Error(`factor sizes ${A.length} and ${B.length} are not d×r and r×d for d = ${d}`);
  const P = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    const po = i * d;
    for (let j = 0; j < r; j++) {
      const a = scale * A[i * r + j]!;
      if (a === 0) continue;
      const bo = j * d;
      for (let k = 0; k < d; k++) P[po + k]! += a * B[bo + k]!;
    }
  }
  return P;
}

export interface Svd {
  /** Singular values, descending. */
  s: Float64Array;
  /** Left and right singular vectors as columns (u[j], v[j] belong to s[j]); u[j] is all zeros where s[j] = 0. */
  u: Float64Array[];
  v: Float64Array[];
}

const dot = (x: Float64Array, y: Float64Array): number => {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * y[i]!;
  return s;
};

/**
 * SVD of an n×n row-major matrix by one-sided Jacobi (Hestenes): rotate pairs of columns until all are orthogonal;
 * then the columns are σ_j·u_j and the accumulated rotations are V. Chosen over an eigen-decomposition of MᵀM because
 * it does not square the condition number, and n = d_model is small (128 for the reference model: a few ms).
 */
export function svd(M: Float64Array, n: number): Svd {
  if (M.length !== n * n) throw new Error(`svd needs an ${n}×${n} matrix, got ${M.length} entries`);
  const w = Array.from({ length: n }, (_, j) => Float64Array.from({ length: n }, (_, i) => M[i * n + j]!));
  const v = Array.from({ length: n }, (_, j) => {
    const e = new Float64Array(n);
    e[j] = 1;
    return e;
  });
  for (let sweep = 0; sweep < 80; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const wp = w[p]!;
        const wq = w[q]!;
        const a = dot(wp, wp);
        const b = dot(wq, wq);
        const g = dot(wp, wq);
        if (g === 0 || Math.abs(g) <= 1e-15 * Math.sqrt(a * b)) continue;
        rotated = true;
        const zeta = (b - a) / (2 * g);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (const [x, y] of [
          [wp, wq],
          [v[p]!, v[q]!],
        ] as const)
          for (let i = 0; i < n; i++) {
            const xi = x[i]!;
            const yi = y[i]!;
            x[i] = c * xi - s * yi;
            y[i] = s * xi + c * yi;
          }
      }
    }
    if (!rotated) break;
  }
  const sigma = w.map((col) => Math.sqrt(dot(col, col)));
  const order = sigma.map((_, j) => j).sort((x, y) => sigma[y]! - sigma[x]!);
  return {
    s: Float64Array.from(order, (j) => sigma[j]!),
    u: order.map((j) => Float64Array.from(w[j]!, (x) => (sigma[j]! > 0 ? x / sigma[j]! : 0))),
    v: order.map((j) => v[j]!),
  };
}

/**
 * The best rank-r approximation of the d×d product P (truncated SVD, optimal in Frobenius norm by Eckart–Young),
 * as adapter factors with s·A·B = U_r Σ_r V_rᵀ:  A = U_r (orthonormal columns), B = Σ_r V_rᵀ / s.
 *
 * A keeps orthonormal columns even where P has rank below r: a zero column of A would make both of its factor's
 * gradients zero (dB needs e·A, dA needs B), so that component could never train again. Those columns are
 * completed by Gram–Schmidt from `completion`'s columns (a d×c matrix, e.g. the previous A), then from the unit
 * vectors, and get zero rows in B, so the product is unchanged. Columns have norm 1 like the N(0, 1/d) init's.
 */
export function factorize(
  P: Float64Array,
  d: number,
  r: number,
  scale: number,
  completion?: Float32Array,
): { A: Float32Array; B: Float32Array } {
  if (!Number.isInteger(r) || r < 1 || r > d) throw new Error(`rank must be an integer from 1 to ${d}, got ${r}`);
  const { s, u, v } = svd(P, d);
  const tol = 1e-9 * s[0]! + Number.MIN_VALUE;
  const columns: Float64Array[] = [];
  const kept: boolean[] = [];
  for (let j = 0; j < r; j++) {
    kept.push(s[j]! > tol);
    if (kept[j]) columns.push(u[j]!);
  }
  const candidates = function* () {
    const c = completion ? completion.length / d : 0;
    for (let j = 0; j < c; j++) yield Float64Array.from({ length: d }, (_, i) => completion![i * c + j]!);
    for (let j = 0; j < d; j++) {
      const e = new Float64Array(d);
      e[j] = 1;
      yield e;
    }
  };
  const fill: Float64Array[] = [];
  const need = r - columns.length;
  for (const x of candidates()) {
    if (fill.length === need) break;
    const norm0 = Math.sqrt(dot(x, x));
    if (norm0 === 0) continue;
    for (const q of [...columns, ...fill]) {
      const p = dot(x, q);
      for (let i = 0; i < d; i++) x[i]! -= p * q[i]!;
    }
    const norm = Math.sqrt(dot(x, x));
    if (norm > 1e-6 * norm0) fill.push(x.map((y) => y / norm));
  }
  const A = new Float32Array(d * r);
  const B = new Float32Array(r * d);
  let nextKept = 0;
  let nextFill = 0;
  for (let j = 0; j < r; j++) {
    const col = kept[j] ? columns[nextKept++]! : fill[nextFill++]!;
    for (let i = 0; i < d; i++) A[i * r + j] = col[i]!;
    if (kept[j]) for (let k = 0; k < d; k++) B[j * d + k] = (s[j]! * v[j]![k]!) / scale;
  }
  return { A, B };
}
