import { DType, isFloating } from './dtype.js';
import { opSchema } from './ops/registry.js';
import type { InferContext, Inferred } from './ops/schema.js';
import { type Tensor, tensor } from './tensor.js';
import {
  type AttrValue,
  type Dim,
  describeNode,
  GraphError,
  type Node,
  type TensorType,
  type ValueInfo,
} from './types.js';

export const DEFAULT_OPSET = 20;

export interface NodeOptions {
  /** Names for the outputs (default: fresh names derived from the operator). */
  outputs?: string[];
  /** Number of outputs when names are not given (default 1). */
  outputCount?: number;
  name?: string;
  /** Output types for operators the builder has no schema for (e.g. loaded from a file's value_info). */
  outputTypes?: TensorType[];
}

/**
 * An ONNX graph under construction. Every node is type- and shape-checked when added, so errors name the
 * node at fault at build time rather than surfacing later inside ONNX Runtime.
 */
export class Graph {
  readonly opset: number;
  name: string;
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  readonly initializers = new Map<string, Tensor>();
  readonly nodes: Node[] = [];
  private readonly types = new Map<string, TensorType>();
  private readonly knownValues = new Map<string, Dim[]>();
  private readonly producers = new Map<string, Node>();
  private readonly counters = new Map<string, number>();
  private freshDims = 0;

  constructor(options: { opset?: number; name?: string } = {}) {
    this.opset = options.opset ?? DEFAULT_OPSET;
    this.name = options.name ?? 'graph';
    if (this.opset < 17 || this.opset > 21) throw new GraphError(`opset ${this.opset} is not supported (17 to 21 are)`);
  }

  // ---- declaring values -------------------------------------------------------------------------

  input(name: string, dtype: DType, shape: Dim[]): string {
    this.declare(name, { dtype, shape: [...shape] });
    this.inputs.push({ name, dtype, shape: [...shape] });
    return name;
  }

  initializer(name: string, value: Tensor): string {
    this.declare(name, { dtype: value.dtype, shape: [...value.dims] });
    this.initializers.set(name, value);
    const values = smallIntValues(value);
    if (values) this.knownValues.set(name, values);
    return name;
  }

  /** A constant initializer with a fresh name. */
  constant(value: Tensor, hint = 'const'): string {
    return this.initializer(this.freshName(hint), value);
  }

  scalar(value: number, dtype: DType = DType.FLOAT): string {
    return this.constant(tensor(dtype, [], [value]), 'scalar');
  }

  ints(values: number[]): string {
    return this.constant(tensor(DType.INT64, [values.length], values), 'ints');
  }

  output(name: string): string {
    const t = this.typeOf(name);
    if (this.outputs.some((o) => o.name === name)) throw new GraphError(`'${name}' is already a graph output`);
    this.outputs.push({ name, ...t, shape: [...t.shape] });
    return name;
  }

  /** Turns an initializer into a graph input (e.g. weights fed by a training loop). Returns its former value. */
  promoteToInput(name: string): Tensor {
    const value = this.initializers.get(name);
    if (!value) throw new GraphError(`'${name}' is not an initializer`);
    this.initializers.delete(name);
    this.knownValues.delete(name);
    this.inputs.push({ name, dtype: value.dtype, shape: [...value.dims] });
    return value;
  }

  // ---- adding nodes -----------------------------------------------------------------------------

  /** Adds a one-output node and returns its output name. */
  op(
    op: string,
    inputs: string[],
    attrs: Record<string, AttrValue | undefined> = {},
    options: NodeOptions = {},
  ): string {
    return this.node(op, inputs, attrs, options)[0]!;
  }

  /** Adds a node and returns all its output names. */
  node(
    op: string,
    inputs: string[],
    attrs: Record<string, AttrValue | undefined> = {},
    options: NodeOptions = {},
  ): string[] {
    const name = options.name ?? this.freshName(op);
    const count = options.outputs?.length ?? options.outputCount ?? 1;
    const outputs = options.outputs ?? Array.from({ length: count }, (_, i) => this.freshName(`${name}_out${i}`));
    const cleanAttrs: Record<string, AttrValue> = {};
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined) cleanAttrs[k] = v;
    const node: Node = { name, op, inputs: [...inputs], outputs, attrs: cleanAttrs };
    const fail = (message: string): never => {
      throw new GraphError(`${describeNode(node)}: ${message}`);
    };
    for (const input of inputs) if (input !== '' && !this.types.has(input)) fail(`input '${input}' is not defined`);
    const inferred = this.infer(node, fail, options.outputTypes);
    outputs.forEach((out, i) => {
      const t = inferred.types[i];
      if (out === '') return;
      if (!t) fail(`output ${i} has no inferred type`);
      this.declare(out, t!);
      const v = inferred.values?.[i];
      if (v) this.knownValues.set(out, v);
      this.producers.set(out, node);
    });
    this.nodes.push(node);
    return outputs;
  }

  private infer(node: Node, fail: (m: string) => never, given?: TensorType[]): Inferred {
    const schema = opSchema(node.op);
    if (!schema) {
      if (given) return { types: given };
      return fail(`operator '${node.op}' is not supported by the graph builder`);
    }
    let inputCount = node.inputs.length;
    while (inputCount > 0 && node.inputs[inputCount - 1] === '') inputCount--;
    if (inputCount < schema.inputs[0] || inputCount > schema.inputs[1])
      fail(`expects ${schema.inputs[0]}..${schema.inputs[1]} inputs, got ${inputCount}`);
    if (node.outputs.length < schema.outputs[0] || node.outputs.length > schema.outputs[1])
      fail(`expects ${schema.outputs[0]}..${schema.outputs[1]} outputs, got ${node.outputs.length}`);
    for (const k of Object.keys(node.attrs)) if (!schema.attrs[k]) fail(`unknown attribute '${k}'`);
    const ctx: InferContext = {
      node,
      opset: this.opset,
      inputCount,
      input: (i) => {
        const name = node.inputs[i];
        if (name === undefined || name === '') return fail(`input ${i} is required`);
        return this.typeOf(name);
      },
      optionalInput: (i) => {
        const name = node.inputs[i];
        return name === undefined || name === '' ? undefined : this.typeOf(name);
      },
      attr: <T extends AttrValue>(k: string) => (node.attrs[k] ?? schema.attrs[k]?.default) as T | undefined,
      value: (i) => {
        const name = node.inputs[i];
        return name ? this.knownValues.get(name) : undefined;
      },
      fresh: () => `?${++this.freshDims}`,
      fail,
    };
    return schema.infer(ctx);
  }

  // ---- queries ----------------------------------------------------------------------------------

  has(name: string): boolean {
    return this.types.has(name);
  }

  typeOf(name: string): TensorType {
    const t = this.types.get(name);
    if (!t) throw new GraphError(`value '${name}' is not defined in graph '${this.name}'`);
    return t;
  }

  shapeOf(name: string): Dim[] {
    return this.typeOf(name).shape;
  }

  /** Build-time known values of a small integer tensor (constants and shapes), if any. */
  valueOf(name: string): Dim[] | undefined {
    return this.knownValues.get(name);
  }

  producer(name: string): Node | undefined {
    return this.producers.get(name);
  }

  isFloat(name: string): boolean {
    return isFloating(this.typeOf(name).dtype);
  }

  freshName(hint: string): string {
    let n = this.counters.get(hint) ?? 0;
    let name: string;
    do name = n === 0 ? hint : `${hint}_${n}`;
    while (this.types.has(name) && ++n);
    this.counters.set(hint, n + 1);
    return name;
  }

  /** A deep-enough copy: nodes and value tables are copied, tensors are shared (they are never mutated). */
  clone(): Graph {
    const g = new Graph({ opset: this.opset, name: this.name });
    g.inputs.push(...this.inputs.map((v) => ({ ...v, shape: [...v.shape] })));
    g.outputs.push(...this.outputs.map((v) => ({ ...v, shape: [...v.shape] })));
    for (const [k, v] of this.initializers) g.initializers.set(k, v);
    for (const n of this.nodes) {
      const copy = { ...n, inputs: [...n.inputs], outputs: [...n.outputs], attrs: { ...n.attrs } };
      g.nodes.push(copy);
      for (const o of copy.outputs) g.producers.set(o, copy);
    }
    for (const [k, v] of this.types) g.types.set(k, v);
    for (const [k, v] of this.knownValues) g.knownValues.set(k, v);
    for (const [k, v] of this.counters) g.counters.set(k, v);
    g.freshDims = this.freshDims;
    return g;
  }

  /** Appends an output to an existing node (e.g. LayerNormalization's saved statistics for a backward pass). */
  addNodeOutput(node: Node, index: number): string {
    if (node.outputs[index]) return node.outputs[index]!;
    const types = this.infer(node, (m) => {
      throw new GraphError(`${describeNode(node)}: ${m}`);
    }).types;
    while (node.outputs.length <= index) node.outputs.push('');
    const name = this.freshName(`${node.name}_out${index}`);
    node.outputs[index] = name;
    this.declare(name, types[index]!);
    this.producers.set(name, node);
    return name;
  }

  private declare(name: string, type: TensorType): void {
    if (!name) throw new GraphError('value names must not be empty');
    if (this.types.has(name)) throw new GraphError(`value '${name}' is defined twice`);
    this.types.set(name, type);
  }
}

function smallIntValues(t: Tensor): Dim[] | undefined {
  if ((t.dtype !== DType.INT64 && t.dtype !== DType.INT32) || t.dims.length > 1 || t.data.length > 64) return undefined;
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}
