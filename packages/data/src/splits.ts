import type { Domain, ImageSet } from './images.js';
import { rng, shuffle } from './random.js';

/**
 * Splits of each domain's images. `pretrain` is used only to pretrain the reference model; `train`, `val` and
 * `test` are the downstream (federated) data, disjoint from it.
 */
export type SplitName = 'pretrain' | 'train' | 'val' | 'test';

export type Splits = Record<SplitName, number[]>;

/** Fractions of each class that go to pretrain/train/val/test (the rest of 1 goes to test). */
export const SPLIT_FRACTIONS: Record<Domain, [pretrain: number, train: number, val: number]> = {
  fashion: [0.3, 0.55, 0.05],
  digits: [0.3, 0.5, 0.1],
  emoji: [0.35, 0.45, 0.1],
};

/** A stratified split (each class divided in the same proportions), deterministic given the seed. */
export function splitImages(set: ImageSet, seed = 0, fractions = SPLIT_FRACTIONS[set.domain]): Splits {
  const random = rng(seed + 0x5eed);
  const byClass = new Map<number, number[]>();
  for (const [i, l] of set.labels.entries()) {
    const list = byClass.get(l) ?? [];
    list.push(i);
    byClass.set(l, list);
  }
  const splits: Splits = { pretrain: [], train: [], val: [], test: [] };
  for (const [, indices] of [...byClass].sort((a, b) => a[0] - b[0])) {
    shuffle(indices, random);
    const n = indices.length;
    const a = Math.round(n * fractions[0]);
    const b = a + Math.round(n * fractions[1]);
    const c = b + Math.round(n * fractions[2]);
    splits.pretrain.push(...indices.slice(0, a));
    splits.train.push(...indices.slice(a, b));
    splits.val.push(...indices.slice(b, c));
    splits.test.push(...indices.slice(c));
  }
  for (const k of Object.keys(splits) as SplitName[]) splits[k].sort((x, y) => x - y);
  return splits;
}
