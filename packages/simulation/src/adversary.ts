import type { AdapterWeights } from '@fednano/core';
import { shuffle } from '@fednano/data';
import { gaussian, rng } from '@fednano/onnx-graph';

/**
 * Byzantine clients for robustness experiments. An adversary trains like an honest client, then replaces its update
 * (its trained weights minus the global adapter) before the update is encoded and sent:
 *
 * - `scale`:     Δ' = s·Δ          (a boosted update that overshoots)
 * - `sign-flip`: Δ' = −s·Δ         (pushes the global adapter away from what the data asks for)
 * - `random`:    Δ' = s·‖Δ‖·g/‖g‖  with g ~ N(0, I): noise in a random direction, s times the honest update's norm
 *
 * `s` is `scale` (default 10). For Fisher merging the adversary also sends a Fisher diagonal: the honest one (at its
 * trained weights) multiplied by `fisherScale` (default 1, i.e. unpoisoned); a large factor buys it the largest
 * share of every coordinate of the merge. Adversaries report their true sample count.
 */
export type AttackKind = 'scale' | 'sign-flip' | 'random';
export const ATTACK_KINDS: readonly AttackKind[] = ['scale', 'sign-flip', 'random'];
export const DEFAULT_ATTACK_SCALE = 10;

export interface AdversarySpec {
  /** How many of the simulated clients are Byzantine; which ones follows from the simulation seed. */
  clients: number;
  attack: AttackKind;
  /** s above (default 10). */
  scale?: number;
  /** Factor on the Fisher diagonal the adversaries send (Fisher merging only; default 1). */
  fisherScale?: number;
}

/** Indices (positions in the plan's client list) of the Byzantine clients: a seeded choice, sorted. */
export function chooseAdversaries(clients: number, count: number, seed: number): number[] {
  if (!(Number.isInteger(count) && count >= 0 && count <= clients))
    throw new RangeError(`adversaries: need 0..${clients} clients, got ${count}`);
  const order = shuffle(
    Array.from({ length: clients }, (_, i) => i),
    rng(seed * 65537 + 0xbad),
  );
  return order.slice(0, count).sort((a, b) => a - b);
}

/**
 * The weights an adversary sends: global + attack(trained − global). `seed` drives the random attack's noise
 * (use a different one per client and round).
 */
export function attackWeights(
  global: AdapterWeights,
  trained: AdapterWeights,
  spec: Pick<AdversarySpec, 'attack' | 'scale'>,
  seed: number,
): AdapterWeights {
  const s = spec.scale ?? DEFAULT_ATTACK_SCALE;
  if (!(s > 0)) throw new RangeError(`attack scale must be > 0, got ${s}`);
  const delta = new Map<string, Float64Array>();
  let deltaSq = 0;
  for (const [k, g] of global) {
    const w = trained.get(k);
    if (!w || w.length !== g.length) throw new Error(`trained tensor '${k}' is missing or has the wrong size`);
    const d = Float64Array.from(g, (x, i) => w[i]! - x);
    for (const x of d) deltaSq += x * x;
    delta.set(k, d);
  }
  let factor: number;
  switch (spec.attack) {
    case 'scale':
      factor = s;
      break;
    case 'sign-flip':
      factor = -s;
      break;
    case 'random': {
      // Replace Δ by Gaussian noise, then rescale the noise to s·‖Δ‖.
      const normal = gaussian(rng(seed));
      let noiseSq = 0;
      for (const d of delta.values())
        for (let i = 0; i < d.length; i++) {
          d[i] = normal();
          noiseSq += d[i]! * d[i]!;
        }
      factor = noiseSq > 0 ? (s * Math.sqrt(deltaSq)) / Math.sqrt(noiseSq) : 0;
      break;
    }
    default:
      throw new Error(`unknown attack '${(spec as { attack: string }).attack}' (known: ${ATTACK_KINDS.join(', ')})`);
  }
  const out: AdapterWeights = new Map();
  for (const [k, g] of global) {
    const d = delta.get(k)!;
    out.set(
      k,
      Float32Array.from(g, (x, i) => x + factor * d[i]!),
    );
  }
  return out;
}

/** The Fisher diagonal an adversary sends: the honest one times `fisherScale`. */
export function attackFisher(fisher: AdapterWeights, fisherScale = 1): AdapterWeights {
  if (!(fisherScale > 0)) throw new RangeError(`fisherScale must be > 0, got ${fisherScale}`);
  if (fisherScale === 1) return fisher;
  return new Map([...fisher].map(([k, f]) => [k, Float32Array.from(f, (x) => x * fisherScale)]));
}
