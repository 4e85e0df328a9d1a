import type { Condition } from './types.js';

/**
 * Sets a condition the way the Kubernetes API conventions ask: lastTransitionTime changes only when the status
 * changes; reason (CamelCase) and message say why; observedGeneration records which spec it describes.
 */
export function setCondition(
  conditions: Condition[] | undefined,
  next: Omit<Condition, 'lastTransitionTime'>,
  now = new Date(),
): Condition[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === next.type);
  const previous = list[i];
  const lastTransitionTime =
    previous && previous.status === next.status ? previous.lastTransitionTime : now.toISOString();
  const c: Condition = { ...next, lastTransitionTime };
  if (i === -1) list.push(c);
  else list[i] = c;
  return list;
}

export const getCondition = (conditions: Condition[] | undefined, type: string): Condition | undefined =>
  conditions?.find((c) => c.type === type);
