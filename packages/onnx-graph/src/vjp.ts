import { isFloating } from './dtype.js';
import { gradRule } from './grad/registry.js';
import type { GradContext } from './grad/rule.js';
import type { Graph } from './graph.js';
import { OPS } from './ops/registry.js';
import { Ops } from './ops-helpers.js';
import { tensor } from './tensor.js';
import { type AttrValue, describeNode, formatType, GraphError, type Node } from './types.js';

export interface VjpOptions {
  /** Outputs to differentiate. A scalar output is seeded with 1; any other gets a seed input `<name>_grad`. */
  of: string | string[];
  /** Graph inputs or initializers to differentiate with respect to. */
  wrt: string[];
  /** Turn the `wrt` initializers into graph inputs (e.g. weights fed by a training loop). Default false. */
  promoteInitializers?: boolean;
  /** Name of the gradient output for a `wrt` value. Default `grad_<name>`. */
  gradName?: (wrt: string) => string;
  /** Allow a `wrt` value that no output depends on (its gradient is zeros). Default false: that is an error. */
  allowUnused?: boolean;
}

export interface VjpResult {
  graph: Graph;
  /** wrt name -> gradient output name. */
  gradients: Record<string, string>;
  /** Non-scalar `of` name -> the seed input added for it. */
  seeds: Record<string, string>;
}

/**
 * Appends the reverse-mode gradient (vector-Jacobian product) of `of` with respect to `wrt` to a copy of the graph,
 * using standard ONNX operators only. Nodes run in reverse topological order, each through its operator's rule;
 * gradients of values used more than once are summed; integer tensors and nodes off the path between `wrt` and
 * `of` (shape arithmetic, masks, labels) get no gradient and emit nothing.
 */
export function vjp(source: Graph, options: VjpOptions): VjpResult {
  const g = source.clone();
  const ops = new Ops(g);
  const of = Array.isArray(options.of) ? options.of : [options.of];
  const gradName = options.gradName ?? ((w: string) => `grad_${w}`);
  const inputNames = new Set(g.inputs.map((i) => i.name));

  for (const w of options.wrt) {
    if (!inputNames.has(w) && !g.initializers.has(w))
      throw new GraphError(
        `'${w}' is neither a graph input nor an initializer; vjp differentiates with respect to those`,
      );
    if (!isFloating(g.typeOf(w).dtype))
      throw new GraphError(`'${w}' is ${formatType(g.typeOf(w))}, not floating point`);
    if (options.promoteInitializers && g.initializers.has(w)) g.promoteToInput(w);
  }
  for (const o of of) {
    if (!g.has(o)) throw new GraphError(`output '${o}' is not defined`);
    if (!isFloating(g.typeOf(o).dtype)) throw new GraphError(`output '${o}' is not floating point`);
  }

  // Forward pass: which float values depend on a wrt value.
  const reach = new Set(options.wrt);
  const active: Node[] = [];
  for (const n of g.nodes) {
    if (!n.inputs.some((i) => reach.has(i))) continue;
    active.push(n);
    for (const o of n.outputs) if (o && isFloating(g.typeOf(o).dtype)) reach.add(o);
  }
  for (const o of of)
    if (!reach.has(o)) throw new GraphError(`output '${o}' does not depend on any of [${options.wrt.join(', ')}]`);

  // Backward pass: which of those nodes lie on a path to an output.
  const wanted = new Set(of);
  const path: Node[] = [];
  for (let k = active.length - 1; k >= 0; k--) {
    const n = active[k]!;
    if (!n.outputs.some((o) => wanted.has(o))) continue;
    path.push(n);
    for (const i of n.inputs) if (reach.has(i)) wanted.add(i);
  }

  // Gradient contributions per value, summed lazily when first read.
  const contributions = new Map<string, string[]>();
  const summed = new Map<string, string>();
  const contribute = (name: string, grad: string) => {
    if (summed.has(name)) throw new GraphError(`internal: gradient of '${name}' was read before all contributions`);
    contributions.set(name, [...(contributions.get(name) ?? []), grad]);
  };
  const total = (name: string): string | undefined => {
    if (summed.has(name)) return summed.get(name);
    const parts = contributions.get(name);
    if (!parts) return undefined;
    const value = parts.length === 1 ? parts[0]! : g.op('Sum', parts);
    summed.set(name, value);
    return value;
  };

  const seeds: Record<string, string> = {};
  for (const o of of) {
    const t = g.typeOf(o);
    if (t.shape.length === 0) contribute(o, g.constant(tensor(t.dtype, [], [1]), `${o}_seed`));
    else {
      seeds[o] = g.input(`${o}_grad`, t.dtype, t.shape);
      contribute(o, seeds[o]);
    }
  }

  for (const node of path) {
    const dys = node.outputs.map((o) => (o ? total(o) : undefined));
    if (dys.every((d) => d === undefined)) continue;
    const rule = gradRule(node.op);
    const fail = (message: string): never => {
      throw new GraphError(`cannot differentiate ${describeNode(node)}: ${message}`);
    };
    if (!rule) fail(`no gradient rule for operator '${node.op}'`);
    const ctx: GradContext = {
      g,
      ops,
      node,
      x: (i) => node.inputs[i]!,
      y: (i) => g.addNodeOutput(node, i),
      dy: (i = 0) => dys[i],
      needs: (i) => {
        const name = node.inputs[i];
        return name !== undefined && name !== '' && wanted.has(name);
      },
      attr: <T extends AttrValue>(k: string) => (node.attrs[k] ?? OPS[node.op]?.attrs[k]?.default) as T | undefined,
      fail,
    };
    let grads: (string | undefined)[];
    try {
      grads = rule!(ctx);
    } catch (e) {
      if (e instanceof GraphError && !e.message.includes(node.name)) fail(e.message);
      throw e;
    }
    node.inputs.forEach((input, i) => {
      const grad = grads[i];
      if (!ctx.needs(i) || grad === undefined) return;
      checkGradType(g, node, input, grad);
      contribute(input, grad);
    });
  }

  const gradients: Record<string, string> = {};
  for (const w of options.wrt) {
    let grad = total(w);
    if (grad === undefined) {
      if (!options.allowUnused) throw new GraphError(`none of [${of.join(', ')}] depends on '${w}'`);
      grad = ops.zerosLike(w);
    }
    gradients[w] = g.op('Identity', [grad], {}, { outputs: [gradName(w)] });
    g.output(gradients[w]);
  }
  return { graph: g, gradients, seeds };
}

/** Catches rule bugs at build time: a gradient must have its input's element type and (static) shape. */
function checkGradType(g: Graph, node: Node, input: string, grad: string): void {
  const want = g.typeOf(input);
  const got = g.typeOf(grad);
  const shapesDiffer =
    want.shape.length !== got.shape.length ||
    want.shape.some((d, i) => typeof d === 'number' && typeof got.shape[i] === 'number' && d !== got.shape[i]);
  if (want.dtype !== got.dtype || shapesDiffer)
    throw new GraphError(
      `internal: gradient rule of ${describeNode(node)} gave ${formatType(got)} for input '${input}' of ${formatType(want)}`,
    );
}
