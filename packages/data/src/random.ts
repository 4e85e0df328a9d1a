import { gaussian, rng } from '@fednano/onnx-graph';

export { rng };

/** In-place Fisher-Yates shuffle. */
export function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** Gamma(shape, 1) by Marsaglia and Tsang; shapes below 1 use the boost Gamma(a+1) * U^(1/a). */
export function gammaSample(shape: number, random: () => number): number {
  if (!(shape > 0)) throw new RangeError(`gamma shape must be > 0, got ${shape}`);
  if (shape < 1) return gammaSample(shape + 1, random) * random() ** (1 / shape);
  const normal = gaussian(random);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = random();
    if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** One draw from a symmetric Dirichlet(alpha) over k outcomes. */
export function dirichlet(k: number, alpha: number, random: () => number): number[] {
  const g = Array.from({ length: k }, () => gammaSample(alpha, random));
  const total = g.reduce((a, b) => a + b, 0);
  return total > 0 ? g.map((x) => x / total) : g.map(() => 1 / k);
}
