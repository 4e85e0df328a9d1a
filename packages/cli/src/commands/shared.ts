import { UsageError } from '../output.js';

export const DEFAULT_MODEL_DIR = process.env.FEDNANO_MODEL_DIR ?? 'models/reference';

export function intOption(
  values: Record<string, unknown>,
  name: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const raw = values[name];
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got '${raw}'`);
  return n;
}

export function numberOption(values: Record<string, unknown>, name: string, min: number): number {
  const raw = values[name];
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= min)
    throw new UsageError(`--${name} must be a number greater than ${min}, got '${raw}'`);
  return n;
}

export function choice<T extends string>(values: Record<string, unknown>, name: string, allowed: readonly T[]): T {
  const v = values[name] as T;
  if (!allowed.includes(v)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got '${v}'`);
  return v;
}
