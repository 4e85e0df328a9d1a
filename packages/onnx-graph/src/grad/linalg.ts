import type { GradRule } from './rule.js';

export const linalgRules: Record<string, GradRule> = {
  /**
   * Y = A @ B with numpy batching. dA = dY @ B^T and dB = A^T @ dY, summed over broadcast batch axes. When B is a
   * weight matrix shared across a batch (A has rank > 2, B rank 2), the batch axes are folded into one Gemm with
   * transA, which sums over the batch inside the matrix product instead of materialising per-batch products.
   */
  MatMul: (ctx) => {
    const { ops, g } = ctx;
    const a = ctx.x(0);
    const b = ctx.x(1);
    const dy = ctx.dy(0)!;
    const ra = g.shapeOf(a).length;
    const rb = g.shapeOf(b).length;
    if (ra < 2 || rb < 2) ctx.fail('gradient of MatMul with a 1-D operand is not supported; Unsqueeze it to 2-D first');
    const da = ctx.needs(0) ? ops.unbroadcast(ops.matmul(dy, ops.transposeLast2(b)), a) : undefined;
    let db: string | undefined;
    if (ctx.needs(1)) {
      if (rb === 2 && ra > 2) {
        const k = g.op('Shape', [a], { start: -1 });
        const n = g.op('Shape', [b], { start: -1 });
        const minusOne = g.ints([-1]);
        const a2 = ops.reshape(a, g.op('Concat', [minusOne, k], { axis: 0 }));
        const dy2 = ops.reshape(dy, g.op('Concat', [minusOne, n], { axis: 0 }));
        db = g.op('Gemm', [a2, dy2], { transA: 1 });
      } else db = ops.unbroadcast(ops.matmul(ops.transposeLast2(a), dy), b);
    }
    return [da, db];
  },

  /** Y = alpha * op(A) @ op(B) + beta * C, with op = transpose where transA/transB is set. */
  Gemm: (ctx) => {
    const { ops, g } = ctx;
    const [a, b] = [ctx.x(0), ctx.x(1)];
    const dy = ctx.dy(0)!;
    const alpha = ctx.attr<number>('alpha')!;
    const beta = ctx.attr<number>('beta')!;
    const ta = ctx.attr<number>('transA') === 1;
    const tb = ctx.attr<number>('transB') === 1;
    const gemm = (x: string, y: string, transA: boolean, transB: boolean) =>
      g.op('Gemm', [x, y], { alpha: alpha === 1 ? undefined : alpha, transA: transA ? 1 : 0, transB: transB ? 1 : 0 });
    // d op(A) = alpha dY op(B)^T; dA is that, transposed back when transA.
    const da = !ctx.needs(0) ? undefined : ta ? gemm(b, dy, tb, true) : gemm(dy, b, false, !tb);
    // d op(B) = alpha op(A)^T dY; dB is that, transposed back when transB.
    const db = !ctx.needs(1) ? undefined : tb ? gemm(dy, a, true, ta) : gemm(a, dy, !ta, false);
    const dc = ctx.needs(2) ? ops.unbroadcast(ops.scale(dy, beta), ctx.x(2)) : undefined;
    return [da, db, dc];
  },
};
