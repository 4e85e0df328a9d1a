import type { DType } from './dtype.js';
import type { Graph } from './graph.js';
import { tensor } from './tensor.js';
import { type Dim, formatShape, GraphError, isStatic } from './types.js';

/**
 * Thin helpers that emit common node patterns into a graph, so gradient rules and model builders read like the
 * maths they implement. Every helper returns the name of the value it produced.
 */
export class Ops {
  constructor(readonly g: Graph) {}

  add = (a: string, b: string) => this.g.op('Add', [a, b]);
  sub = (a: string, b: string) => this.g.op('Sub', [a, b]);
  mul = (a: string, b: string) => this.g.op('Mul', [a, b]);
  div = (a: string, b: string) => this.g.op('Div', [a, b]);
  neg = (a: string) => this.g.op('Neg', [a]);
  exp = (a: string) => this.g.op('Exp', [a]);
  matmul = (a: string, b: string) => this.g.op('MatMul', [a, b]);

  /** A scalar constant with the element type of `like`. */
  scalarLike(value: number, like: string): string {
    return this.g.constant(tensor(this.g.typeOf(like).dtype, [], [value]), 'scalar');
  }

  /** x * c for a number c, skipping the multiplication when c is 1. */
  scale(x: string, c: number): string {
    return c === 1 ? x : this.mul(x, this.scalarLike(c, x));
  }

  cast(x: string, to: DType): string {
    return this.g.typeOf(x).dtype === to ? x : this.g.op('Cast', [x], { to });
  }

  /** ReduceSum/ReduceMean over the given axes, emitting axes as an input or attribute as the opset requires. */
  reduce(op: 'ReduceSum' | 'ReduceMean' | 'ReduceMax', x: string, axes: number[], keepdims: boolean): string {
    const attrsOnly = op !== 'ReduceSum' && this.g.opset < 18;
    if (attrsOnly) return this.g.op(op, [x], { axes, keepdims: keepdims ? 1 : 0 });
    return this.g.op(op, [x, this.g.ints(axes)], { keepdims: keepdims ? 1 : 0 });
  }

  transpose(x: string, perm: number[]): string {
    return perm.every((p, i) => p === i) ? x : this.g.op('Transpose', [x], { perm });
  }

  /** Swaps the last two axes. */
  transposeLast2(x: string): string {
    const r = this.g.shapeOf(x).length;
    const perm = Array.from({ length: r }, (_, i) => i);
    [perm[r - 2], perm[r - 1]] = [r - 1, r - 2];
    return this.transpose(x, perm);
  }

  unsqueeze(x: string, axes: number[]): string {
    return axes.length === 0 ? x : this.g.op('Unsqueeze', [x, this.g.ints(axes)]);
  }

  squeeze(x: string, axes: number[]): string {
    return axes.length === 0 ? x : this.g.op('Squeeze', [x, this.g.ints(axes)]);
  }

  /** The shape of x as an int64 tensor: a constant when static, a Shape node otherwise. */
  shape(x: string): string {
    const s = this.g.shapeOf(x);
    return isStatic(s) ? this.g.ints(s) : this.g.op('Shape', [x]);
  }

  reshape(x: string, shape: number[] | string): string {
    return this.g.op('Reshape', [x, typeof shape === 'string' ? shape : this.g.ints(shape)]);
  }

  /** Reshapes x to the shape of `like` (skipped when the static shapes already agree). */
  reshapeLike(x: string, like: string): string {
    const a = this.g.shapeOf(x);
    const b = this.g.shapeOf(like);
    if (a.length === b.length && a.every((d, i) => d === b[i])) return x;
    return this.reshape(x, this.shape(like));
  }

  /** Zeros with the shape and element type of `like`. */
  zerosLike(like: string): string {
    const dtype = this.g.typeOf(like).dtype;
    return this.g.op('ConstantOfShape', [this.shape(like)], { value: tensor(dtype, [1], [0]) });
  }

  /**
   * Sums a gradient computed at a broadcast output shape back to the shape of the operand `like`: over the leading
   * axes `like` lacks and over the axes where `like` has size 1. A symbolic dimension that might or might not have
   * been broadcast cannot be decided at build time, so that case is an error instead of a silent guess.
   */
  unbroadcast(grad: string, like: string): string {
    const gs = this.g.shapeOf(grad);
    const ts = this.g.shapeOf(like);
    const lead = gs.length - ts.length;
    if (lead < 0) throw new GraphError(`cannot sum gradient ${formatShape(gs)} to the larger shape ${formatShape(ts)}`);
    const axes: number[] = Array.from({ length: lead }, (_, i) => i);
    ts.forEach((d: Dim, i) => {
      const o = gs[lead + i]!;
      if (d === o) return;
      if (d === 1) axes.push(lead + i);
      else
        throw new GraphError(
          `cannot tell whether axis ${i} of '${like}' ${formatShape(ts)} was broadcast to ${formatShape(gs)}; ` +
            'give it a static size or the same symbolic name',
        );
    });
    if (axes.length === 0) return grad;
    const summed = this.reduce('ReduceSum', grad, axes, true);
    return this.squeeze(summed, axes.slice(0, lead));
  }
}
