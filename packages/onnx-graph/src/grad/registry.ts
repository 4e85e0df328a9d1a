import { elementwiseRules } from './elementwise.js';
import { linalgRules } from './linalg.js';
import { nnRules } from './nn.js';
import type { GradRule } from './rule.js';
import { shapeRules } from './shape.js';

/** One gradient rule per operator. */
const RULES = new Map<string, GradRule>(
  Object.entries({ ...elementwiseRules, ...linalgRules, ...nnRules, ...shapeRules }),
);

export function gradRule(op: string): GradRule | undefined {
  return RULES.get(op);
}

/** Registers a rule for an operator the library does not cover (or replaces one). */
export function registerGradRule(op: string, rule: GradRule): void {
  RULES.set(op, rule);
}

export function differentiableOps(): string[] {
  return [...RULES.keys()].sort();
}
