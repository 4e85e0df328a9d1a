import { tensor } from '../tensor.js';
import type { GradRule } from './rule.js';

const axisOf = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

export const nnRules: Record<string, GradRule> = {
  // dx = y * (dy - sum(dy * y))
  Softmax: (ctx) => {
    const { ops, g } = ctx;
    const y = ctx.y(0);
    const axis = axisOf(ctx.attr<number>('axis')!, g.shapeOf(y).length);
    const dot = ops.reduce('ReduceSum', ops.mul(ctx.dy(0)!, y), [axis], true);
    return [ops.mul(y, ops.sub(ctx.dy(0)!, dot))];
  },
  // dx = dy - softmax(x) * sum(dy), with softmax(x) = exp(y)
  LogSoftmax: (ctx) => {
    const { ops, g } = ctx;
    const y = ctx.y(0);
    const axis = axisOf(ctx.attr<number>('axis')!, g.shapeOf(y).length);
    const total = ops.reduce('ReduceSum', ctx.dy(0)!, [axis], true);
    return [ops.sub(ctx.dy(0)!, ops.mul(ops.exp(y), total))];
  },

  /**
   * y = xhat * scale + bias, xhat = (x - mean) * invStd over the axes from `axis` on.
   * dx = invStd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * scale.
   * The forward node's saved Mean/InvStdDev are reused when their element type matches x (stash_type); otherwise
   * the statistics are recomputed at x's precision so float64 checks stay exact.
   */
  LayerNormalization: (ctx) => {
    const { ops, g } = ctx;
    const [x, scale] = [ctx.x(0), ctx.x(1)];
    const dy = ctx.dy(0)!;
    const rank = g.shapeOf(x).length;
    const axis = axisOf(ctx.attr<number>('axis')!, rank);
    const axes = Array.from({ length: rank - axis }, (_, i) => axis + i);
    const dtype = g.typeOf(x).dtype;
    let mean: string;
    let invStd: string;
    if (g.typeOf(ctx.y(1)).dtype === dtype) {
      mean = ctx.y(1);
      invStd = ctx.y(2);
    } else {
      mean = ops.reduce('ReduceMean', x, axes, true);
      const centred = ops.sub(x, mean);
      const variance = ops.reduce('ReduceMean', ops.mul(centred, centred), axes, true);
      const eps = ops.scalarLike(ctx.attr<number>('epsilon')!, x);
      invStd = g.op('Reciprocal', [g.op('Sqrt', [ops.add(variance, eps)])]);
    }
    const xhat = ops.mul(ops.sub(x, mean), invStd);
    let dx: string | undefined;
    if (ctx.needs(0)) {
      const gs = ops.mul(dy, scale);
      const meanG = ops.reduce('ReduceMean', gs, axes, true);
      const meanGX = ops.reduce('ReduceMean', ops.mul(gs, xhat), axes, true);
      dx = ops.mul(invStd, ops.sub(ops.sub(gs, meanG), ops.mul(xhat, meanGX)));
    }
    const dScale = ctx.needs(1) ? ops.unbroadcast(ops.mul(dy, xhat), scale) : undefined;
    const dBias = ctx.needs(2) ? ops.unbroadcast(dy, ctx.x(2)) : undefined;
    return [dx, dScale, dBias];
  },

  /**
   * loss_i = -w_i log p_i[label_i]; dscores = (softmax(scores) - onehot(label)) * s_i, where s_i carries the
   * incoming gradient, the class weight, the ignore mask and (for 'mean') the division by the total weight.
   */
  SoftmaxCrossEntropyLoss: (ctx) => {
    const { ops, g } = ctx;
    if (ctx.needs(2)) ctx.fail('gradient with respect to the class weights is not supported');
    const [scores, labels] = [ctx.x(0), ctx.x(1)];
    const dy = ctx.dy(0) ?? ctx.fail('gradient through the log_prob output is not supported; differentiate the loss');
    const sShape = g.shapeOf(scores);
    const classes = sShape[1]!;
    if (typeof classes !== 'number') return ctx.fail('the class dimension of scores must be static');
    const dtype = g.typeOf(scores).dtype;
    const labelType = g.typeOf(labels).dtype;
    const reduction = ctx.attr<string>('reduction')!;
    const ignore = ctx.attr<number>('ignore_index');

    // Class indices shaped [1, C, 1, ...] to compare against labels unsqueezed at axis 1.
    const classShape = sShape.map((_, i) => (i === 1 ? classes : 1));
    const classIds = g.constant(
      tensor(
        labelType,
        classShape,
        Array.from({ length: classes }, (_, i) => i),
      ),
      'classes',
    );
    const onehot = ops.cast(g.op('Equal', [ops.unsqueeze(labels, [1]), classIds]), dtype);

    let weight: string | undefined; // per-sample weight w_i, shape of labels
    let safeLabels = labels;
    if (ignore !== undefined) {
      const kept = g.op('Not', [g.op('Equal', [labels, g.constant(tensor(labelType, [], [ignore]))])]);
      weight = ops.cast(kept, dtype);
      safeLabels = g.op('Where', [kept, labels, g.constant(tensor(labelType, [], [0]))]);
    }
    if (ctx.node.inputs[2]) {
      const classWeight = g.op('Gather', [ctx.x(2), safeLabels]);
      weight = weight ? ops.mul(weight, classWeight) : classWeight;
    }
    let perSample = dy;
    if (weight) perSample = ops.mul(perSample, weight);
    if (reduction === 'mean') {
      const total = weight ? ops.reduce('ReduceSum', weight, [], false) : ops.cast(g.op('Size', [labels]), dtype);
      perSample = ops.div(perSample, total);
    }
    // Broadcast a scalar incoming gradient over the samples when no per-sample weight did so.
    if (g.shapeOf(perSample).length === 0) perSample = g.op('Expand', [perSample, ops.shape(labels)]);
    const probs = ops.exp(ctx.y(1));
    return [ops.mul(ops.sub(probs, onehot), ops.unsqueeze(perSample, [1])), undefined, undefined];
  },
};
