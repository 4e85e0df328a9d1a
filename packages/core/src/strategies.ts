import { gaussian, rng } from '@fednano/onnx-graph';
import type { AdapterWeights } from './adapters.js';

/**
 * Server-side aggregation of client adapter updates, behind one small interface (after Flower's Strategy): a
 * strategy says what clients should do this round and merges what they send. Averaging strategies aggregate in a
 * stream, so memory does not grow with the number of clients; median and trimmed mean must see all updates.
 */
export interface ClientUpdate {
  client: string;
  /** The client's adapter weights after local training. */
  weights: AdapterWeights;
  /** Diagonal Fisher of the adapter parameters (Fisher merging only). */
  fisher?: AdapterWeights;
  samples: number;
}

export interface RoundAggregator {
  add(update: ClientUpdate): void;
  /** Number of updates added. */
  readonly count: number;
  /** The next global adapter. */
  finish(): AdapterWeights;
}

export interface Strategy {
  readonly name: string;
  readonly needsFisher: boolean;
  /** True when memory does not grow with the number of updates. */
  readonly streaming: boolean;
  /** Settings for clients' local training this round. */
  clientConfig(): { proximalMu?: number };
  begin(global: AdapterWeights, round: number): RoundAggregator;
}

/**
 * A server step on the merged update (FedAvgM, Hsu et al. 2019; the SGD case of Reddi et al.'s FedOpt): the server
 * treats merged − global as a pseudo-gradient and moves global by serverLr times its momentum buffer. With few
 * rounds each round's merged update is a short trajectory (localSteps from the same start), so a step larger than 1
 * and momentum over rounds let the global adapter travel further for the same client compute. Defaults (1, 0) apply
 * the merge as it is.
 */
export interface ServerMomentumSpec {
  serverLr?: number;
  serverMomentum?: number;
}

export type StrategySpec = {
  /** Clip each client's update (its weights minus the global ones) to this L2 norm before aggregating. */
  clipNorm?: number;
  /** Central differential privacy: clip to clipNorm, average with equal weights, add N(0, (z C / K)^2). */
  dp?: { clipNorm: number; noiseMultiplier: number; seed?: number };
} & (
  | ({ name: 'fedavg' } & ServerMomentumSpec)
  | ({ name: 'fedprox'; mu: number } & ServerMomentumSpec)
  | ({
      name: 'fisher';
      lambda?: 'uniform' | 'samples';
      epsilon?: number;
      /**
       * Bound on one client's Fisher influence: its diagonal is scaled to mean 1 and capped at this value per
       * coordinate, so inflating (or concentrating) the Fisher it reports buys a client no more weight.
       */
      fisherCap?: number;
    } & ServerMomentumSpec)
  | { name: 'fedadam' | 'fedyogi'; serverLr?: number; beta1?: number; beta2?: number; tau?: number }
  | { name: 'median' }
  | { name: 'trimmed-mean'; trim: number }
);

export const STRATEGY_NAMES = ['fedavg', 'fedprox', 'fisher', 'fedadam', 'fedyogi', 'median', 'trimmed-mean'] as const;

// ---- update preprocessing shared by all strategies --------------------------------------------------------

function delta(global: AdapterWeights, weights: AdapterWeights): AdapterWeights {
  const out: AdapterWeights = new Map();
  for (const [k, g] of global) {
    const w = weights.get(k);
    if (!w || w.length !== g.length) throw new Error(`update tensor '${k}' is missing or has the wrong size`);
    const d = new Float32Array(g.length);
    for (let i = 0; i < d.length; i++) d[i] = w[i]! - g[i]!;
    out.set(k, d);
  }
  return out;
}

export function l2norm(w: AdapterWeights): number {
  let s = 0;
  for (const t of w.values()) for (let i = 0; i < t.length; i++) s += t[i]! * t[i]!;
  return Math.sqrt(s);
}

function clipInPlace(d: AdapterWeights, maxNorm: number): void {
  const n = l2norm(d);
  if (n <= maxNorm) return;
  const s = maxNorm / n;
  for (const t of d.values()) for (let i = 0; i < t.length; i++) t[i]! *= s;
}

/** Float64 accumulators (sums over many clients lose precision in float32). */
type Sums = Map<string, Float64Array>;
const zeroSums = (w: AdapterWeights): Sums => new Map([...w].map(([k, v]) => [k, new Float64Array(v.length)]));

/** Clipped deltas of each update; the clip bound is the DP bound when DP is on. */
function preprocess(spec: StrategySpec, global: AdapterWeights, u: ClientUpdate): AdapterWeights {
  const d = delta(global, u.weights);
  const bound = spec.dp?.clipNorm ?? spec.clipNorm;
  if (bound !== undefined) clipInPlace(d, bound);
  return d;
}

// ---- averaging (FedAvg, FedProx, and the mean that FedAdam/FedYogi start from) -------------------------------

class WeightedMean {
  private readonly acc: Sums;
  private total = 0;
  count = 0;
  constructor(global: AdapterWeights) {
    this.acc = zeroSums(global);
  }
  add(d: AdapterWeights, weight: number): void {
    if (!(weight > 0)) throw new Error(`update weight must be > 0, got ${weight}`);
    for (const [k, a] of this.acc) {
      const t = d.get(k)!;
      for (let i = 0; i < a.length; i++) a[i]! += weight * t[i]!;
    }
    this.total += weight;
    this.count++;
  }
  mean(): AdapterWeights {
    if (this.count === 0) throw new Error('no updates to aggregate');
    return new Map([...this.acc].map(([k, a]) => [k, Float32Array.from(a, (x) => x / this.total)]));
  }
}

function addDpNoise(spec: StrategySpec, mean: AdapterWeights, count: number, round: number): void {
  if (!spec.dp) return;
  const normal = gaussian(rng((spec.dp.seed ?? 0) * 1_000_003 + round));
  const sigma = (spec.dp.noiseMultiplier * spec.dp.clipNorm) / count;
  for (const t of mean.values()) for (let i = 0; i < t.length; i++) t[i]! += sigma * normal();
}

const applyDelta = (global: AdapterWeights, d: AdapterWeights): AdapterWeights =>
  new Map([...global].map(([k, g]) => [k, Float32Array.from(g, (x, i) => x + d.get(k)![i]!)]));

function averaging(
  spec: StrategySpec,
  global: AdapterWeights,
  round: number,
  serverStep?: (mean: AdapterWeights) => AdapterWeights,
): RoundAggregator {
  const mean = new WeightedMean(global);
  return {
    get count() {
      return mean.count;
    },
    add: (u) => mean.add(preprocess(spec, global, u), spec.dp ? 1 : u.samples),
    finish: () => {
      const m = mean.mean();
      addDpNoise(spec, m, mean.count, round);
      return applyDelta(global, serverStep ? serverStep(m) : m);
    },
  };
}

// ---- the strategies ---------------------------------------------------------------------------------------------

/**
 * FedNano's Fisher merging: θ[j] = Σ λ_k F_k[j] θ_k[j] / (Σ λ_k F_k[j] + ε), λ_k uniform or n_k / n. Where no
 * client has any Fisher mass (Σ λ_k F_k[j] = 0) the formula would reset θ[j] to 0, so the weighted mean is used.
 */
function fisherMerge(
  spec: Extract<StrategySpec, { name: 'fisher' }>,
  global: AdapterWeights,
  serverStep?: (merged: AdapterWeights) => AdapterWeights,
): RoundAggregator {
  const eps = spec.epsilon ?? 1e-8;
  const num = zeroSums(global);
  const den = zeroSums(global);
  const mean = new WeightedMean(global);
  let lambdaTotal = 0;
  return {
    get count() {
      return mean.count;
    },
    add(u) {
      if (!u.fisher) throw new Error(`Fisher merging needs the Fisher diagonal from client ${u.client}`);
      const fisher = spec.fisherCap === undefined ? u.fisher : boundedFisher(u.fisher, spec.fisherCap);
      const d = preprocess(spec, global, u);
      const lambda = spec.lambda === 'samples' ? u.samples : 1;
      mean.add(d, lambda);
      lambdaTotal += lambda;
      for (const [k, n] of num) {
        const f = fisher.get(k);
        if (!f || f.length !== n.length)
          throw new Error(`Fisher tensor '${k}' from client ${u.client} is missing or has the wrong size`);
        const g = global.get(k)!;
        const dk = d.get(k)!;
        const dn = den.get(k)!;
        for (let i = 0; i < n.length; i++) {
          n[i]! += lambda * f[i]! * (g[i]! + dk[i]!);
          dn[i]! += lambda * f[i]!;
        }
      }
    },
    finish() {
      const fallback = applyDelta(global, mean.mean());
      const merged: AdapterWeights = new Map(
        [...num].map(([k, n]) => {
          const dn = den.get(k)!;
          const fb = fallback.get(k)!;
          return [
            k,
            Float32Array.from(n, (x, i) => (dn[i]! > 0 ? x / lambdaTotal / (dn[i]! / lambdaTotal + eps) : fb[i]!)),
          ];
        }),
      );
      return serverStep ? applyDelta(global, serverStep(delta(global, merged))) : merged;
    },
  };
}

/** A client's Fisher diagonal scaled to mean 1 over all its coordinates, each then capped at `cap`. */
export function boundedFisher(fisher: AdapterWeights, cap: number): AdapterWeights {
  let sum = 0;
  let n = 0;
  for (const f of fisher.values()) {
    for (let i = 0; i < f.length; i++) sum += f[i]!;
    n += f.length;
  }
  const mean = sum / Math.max(1, n);
  if (!(mean > 0)) return fisher; // no Fisher mass: the merge falls back to the weighted mean there
  return new Map([...fisher].map(([k, f]) => [k, Float32Array.from(f, (x) => Math.min(x / mean, cap))]));
}

/** Coordinate-wise median or trimmed mean of the clients' (clipped) weights. Buffers all updates. */
function orderStatistic(spec: StrategySpec, global: AdapterWeights, trim: number | 'median'): RoundAggregator {
  const deltas: AdapterWeights[] = [];
  return {
    get count() {
      return deltas.length;
    },
    add: (u) => {
      deltas.push(preprocess(spec, global, u));
    },
    finish() {
      if (deltas.length === 0) throw new Error('no updates to aggregate');
      const k = deltas.length;
      const cut = trim === 'median' ? 0 : Math.floor(trim * k);
      if (k - 2 * cut < 1) throw new Error(`trimming ${cut} from each end of ${k} updates leaves none`);
      const values = new Float64Array(k);
      const out: AdapterWeights = new Map();
      for (const [name, g] of global) {
        const t = new Float32Array(g.length);
        for (let i = 0; i < g.length; i++) {
          for (let c = 0; c < k; c++) values[c] = deltas[c]!.get(name)![i]!;
          values.sort();
          let v: number;
          if (trim === 'median') v = k % 2 ? values[(k - 1) / 2]! : (values[k / 2 - 1]! + values[k / 2]!) / 2;
          else {
            let s = 0;
            for (let c = cut; c < k - cut; c++) s += values[c]!;
            v = s / (k - 2 * cut);
          }
          t[i] = g[i]! + v;
        }
        out.set(name, t);
      }
      return out;
    },
  };
}

/**
 * The server step of ServerMomentumSpec, keeping its momentum buffer across rounds (one Strategy instance per
 * federation); undefined for the defaults, so a plain merge stays bit for bit what it was.
 */
function serverMomentum(spec: ServerMomentumSpec) {
  const { serverLr = 1, serverMomentum: mu = 0 } = spec;
  if (!(serverLr > 0)) throw new Error(`serverLr must be > 0, got ${serverLr}`);
  if (!(mu >= 0 && mu < 1)) throw new Error(`serverMomentum must be in [0, 1), got ${mu}`);
  if (serverLr === 1 && mu === 0) return undefined;
  let buffer: AdapterWeights | undefined;
  return (d: AdapterWeights): AdapterWeights => {
    buffer ??= new Map([...d].map(([k, t]) => [k, new Float32Array(t.length)]));
    const step: AdapterWeights = new Map();
    for (const [k, t] of d) {
      const b = buffer.get(k)!;
      const s = new Float32Array(t.length);
      for (let i = 0; i < t.length; i++) {
        b[i] = mu * b[i]! + t[i]!;
        s[i] = serverLr * b[i]!;
      }
      step.set(k, s);
    }
    return step;
  };
}

/** FedAdam / FedYogi (Reddi et al., Adaptive Federated Optimization): a server optimizer on the mean update. */
function serverOptimizer(spec: Extract<StrategySpec, { name: 'fedadam' | 'fedyogi' }>) {
  const { serverLr = 0.01, beta1 = 0.9, beta2 = 0.99, tau = 1e-3 } = spec;
  let m: AdapterWeights | undefined;
  let v: AdapterWeights | undefined;
  return (mean: AdapterWeights): AdapterWeights => {
    m ??= new Map([...mean].map(([k, t]) => [k, new Float32Array(t.length)]));
    v ??= new Map([...mean].map(([k, t]) => [k, new Float32Array(t.length).fill(tau * tau)]));
    const step: AdapterWeights = new Map();
    for (const [k, d] of mean) {
      const mk = m.get(k)!;
      const vk = v.get(k)!;
      const s = new Float32Array(d.length);
      for (let i = 0; i < d.length; i++) {
        const g = d[i]!;
        mk[i] = beta1 * mk[i]! + (1 - beta1) * g;
        if (spec.name === 'fedadam') vk[i] = beta2 * vk[i]! + (1 - beta2) * g * g;
        else vk[i] = vk[i]! - (1 - beta2) * g * g * Math.sign(vk[i]! - g * g);
        s[i] = (serverLr * mk[i]!) / (Math.sqrt(vk[i]!) + tau);
      }
      step.set(k, s);
    }
    return step;
  };
}

export function createStrategy(spec: StrategySpec): Strategy {
  if (spec.clipNorm !== undefined && !(spec.clipNorm > 0))
    throw new Error(`clipNorm must be > 0, got ${spec.clipNorm}`);
  if (spec.dp) {
    if (!(spec.dp.clipNorm > 0) || !(spec.dp.noiseMultiplier >= 0))
      throw new Error('dp needs clipNorm > 0 and noiseMultiplier >= 0');
    if (!['fedavg', 'fedprox', 'fedadam', 'fedyogi'].includes(spec.name))
      throw new Error(
        `dp is available with averaging strategies (fedavg, fedprox, fedadam, fedyogi), not '${spec.name}'`,
      );
  }
  const base = { name: spec.name, needsFisher: spec.name === 'fisher', clientConfig: () => ({}) };
  switch (spec.name) {
    case 'fedavg': {
      const step = serverMomentum(spec);
      return { ...base, streaming: true, begin: (g, r) => averaging(spec, g, r, step) };
    }
    case 'fedprox': {
      if (!(spec.mu >= 0)) throw new Error(`fedprox needs mu >= 0, got ${spec.mu}`);
      const step = serverMomentum(spec);
      return {
        ...base,
        streaming: true,
        clientConfig: () => ({ proximalMu: spec.mu }),
        begin: (g, r) => averaging(spec, g, r, step),
      };
    }
    case 'fisher': {
      const step = serverMomentum(spec);
      return { ...base, streaming: true, begin: (g) => fisherMerge(spec, g, step) };
    }
    case 'fedadam':
    case 'fedyogi': {
      const step = serverOptimizer(spec);
      return { ...base, streaming: true, begin: (g, r) => averaging(spec, g, r, step) };
    }
    case 'median':
      return { ...base, streaming: false, begin: (g) => orderStatistic(spec, g, 'median') };
    case 'trimmed-mean':
      if (!(spec.trim >= 0 && spec.trim < 0.5)) throw new Error(`trimmed-mean needs 0 <= trim < 0.5, got ${spec.trim}`);
      return { ...base, streaming: false, begin: (g) => orderStatistic(spec, g, spec.trim) };
    default:
      throw new Error(`unknown strategy '${(spec as { name: string }).name}' (known: ${STRATEGY_NAMES.join(', ')})`);
  }
}
