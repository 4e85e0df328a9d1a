import { elementwiseOps } from './elementwise.js';
import { nnOps } from './nn.js';
import { reduceOps } from './reduce.js';
import type { OpSchema } from './schema.js';
import { shapeOps } from './shape.js';

/** Every operator the builder knows: its arity, attributes and shape-inference rule (default ONNX domain). */
export const OPS: Readonly<Record<string, OpSchema>> = { ...elementwiseOps, ...nnOps, ...reduceOps, ...shapeOps };

export function opSchema(op: string): OpSchema | undefined {
  return Object.hasOwn(OPS, op) ? OPS[op] : undefined;
}
