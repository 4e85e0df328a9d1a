import type { Graph } from '../graph.js';
import type { Ops } from '../ops-helpers.js';
import type { AttrValue, Node } from '../types.js';

/** What a gradient rule sees: the forward node, the incoming output gradients, and where to emit nodes. */
export interface GradContext {
  readonly g: Graph;
  readonly ops: Ops;
  readonly node: Node;
  /** Input i of the forward node. */
  x(i: number): string;
  /** Output i of the forward node, added to the node if it does not produce it yet (e.g. saved statistics). */
  y(i: number): string;
  /** Gradient flowing into output i, or undefined when none reaches it. */
  dy(i?: number): string | undefined;
  /** Whether input i needs a gradient (it lies on a path from a differentiated input). */
  needs(i: number): boolean;
  /** Attribute value or its declared default. */
  attr<T extends AttrValue>(name: string): T | undefined;
  /** Reports something this rule cannot differentiate; the error names the node and operator. */
  fail(message: string): never;
}

/** Returns the gradient for each input (undefined where none is needed or the input is not differentiable). */
export type GradRule = (ctx: GradContext) => (string | undefined)[];
