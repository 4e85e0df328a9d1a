import { ADAPTER_STREAMS, type AdapterConfig, type AdapterWeights, adapterScale } from './adapters.js';
import { factorize, lowRankProduct } from './low-rank.js';
import {
  type ClientUpdate,
  createStrategy,
  type RoundAggregator,
  type Strategy,
  type StrategySpec,
} from './strategies.js';

/**
 * Heterogeneous clients: each client trains NanoAdapters of its own rank r_i ≤ R, the federation's rank (the
 * global adapter's). A client's adapter is the product ΔW_i = s_i·A_i·B_i (s_i = alpha / r_i), so factors of
 * different ranks cannot be averaged entry by entry. Two merges (docs/fednano-core.md, "Heterogeneous ranks"):
 *
 * - `svd` (FlexLoRA-style): average the clients' changes in the d×d product space, ΔP_i = s_i A_i B_i − proj_{r_i}(P),
 *   weighted as the strategy weights clients, add them to the global product P, and factorize the result with a
 *   truncated SVD at rank R. A rank-r client starts from the best rank-r approximation of the global product.
 * - `zero-pad` (HeteroLoRA-style): a rank-r client starts from the global's first r components; its update is
 *   zero-padded back to rank R (the components it does not hold are left unchanged) and its Fisher diagonal is zero
 *   there, then the strategy merges rank-R factors as usual. Works with every strategy; the padded zeros shrink
 *   FedAvg's update of the high components (Fisher merging skips them: zero Fisher has no say).
 *
 * Both are exact where they should be: with every client at rank R neither changes anything, and a client that
 * trains nothing contributes a zero change.
 */
export const RANK_MERGES = ['svd', 'zero-pad'] as const;
export type RankMerge = (typeof RANK_MERGES)[number];

export interface RankSettings {
  dModel: number;
  /** The federation's (global, maximal) rank R and alpha. */
  adapter: AdapterConfig;
  merge: RankMerge;
}

/** The rank of an adapter's factors (the width of image.A). */
export function adapterRank(w: AdapterWeights, dModel: number): number {
  const a = w.get('image.A');
  const r = a ? a.length / dModel : Number.NaN;
  if (!Number.isInteger(r) || r < 1) throw new Error(`adapter tensor image.A does not have ${dModel} rows`);
  return r;
}

function checkRank(rank: number, s: RankSettings): void {
  if (!Number.isInteger(rank) || rank < 1 || rank > s.adapter.rank)
    throw new Error(`client adapter rank must be an integer from 1 to ${s.adapter.rank}, got ${rank}`);
}

const scaleOf = (s: RankSettings, rank: number): number => adapterScale({ rank, alpha: s.adapter.alpha });

/** Columns [0, r) of a row-major rows×cols matrix. */
function leadingColumns(m: Float32Array, rows: number, cols: number, r: number, factor = 1): Float32Array {
  const out = new Float32Array(rows * r);
  for (let i = 0; i < rows; i++) for (let j = 0; j < r; j++) out[i * r + j] = factor * m[i * cols + j]!;
  return out;
}

/**
 * What a rank-r client starts from: the global adapter itself at rank R; otherwise, by `svd`, the best rank-r
 * approximation of its product, by `zero-pad`, its first r components (B rescaled by s_R / s_r so that the
 * function s·A·B of those components is unchanged). Deterministic, so the aggregator recomputes it.
 */
export function projectAdapter(global: AdapterWeights, rank: number, s: RankSettings): AdapterWeights {
  checkRank(rank, s);
  const R = s.adapter.rank;
  if (rank === R) return global;
  const d = s.dModel;
  const out: AdapterWeights = new Map();
  for (const stream of ADAPTER_STREAMS) {
    const A = global.get(`${stream}.A`)!;
    const B = global.get(`${stream}.B`)!;
    if (s.merge === 'zero-pad') {
      out.set(`${stream}.A`, leadingColumns(A, d, R, rank));
      out.set(
        `${stream}.B`,
        B.slice(0, rank * d).map((x) => (x * scaleOf(s, R)) / scaleOf(s, rank)),
      );
    } else {
      const f = factorize(lowRankProduct(A, B, d, scaleOf(s, R)), d, rank, scaleOf(s, rank), A);
      out.set(`${stream}.A`, f.A);
      out.set(`${stream}.B`, f.B);
    }
  }
  return out;
}

/**
 * A rank-r update (and its Fisher diagonal) as rank R for `zero-pad`: components [0, r) are the client's (B scaled
 * back by s_r / s_R, its Fisher by the inverse square), the others the global's, with zero Fisher.
 */
export function zeroPadUpdate(global: AdapterWeights, u: ClientUpdate, s: RankSettings): ClientUpdate {
  const d = s.dModel;
  const R = s.adapter.rank;
  const r = adapterRank(u.weights, d);
  checkRank(r, s);
  if (r === R) return u;
  const c = scaleOf(s, r) / scaleOf(s, R);
  const weights: AdapterWeights = new Map();
  const fisher: AdapterWeights | undefined = u.fisher ? new Map() : undefined;
  for (const stream of ADAPTER_STREAMS) {
    const gA = global.get(`${stream}.A`)!;
    const gB = global.get(`${stream}.B`)!;
    const A = gA.slice();
    const wA = u.weights.get(`${stream}.A`)!;
    for (let i = 0; i < d; i++) for (let j = 0; j < r; j++) A[i * R + j] = wA[i * r + j]!;
    const B = gB.slice();
    const wB = u.weights.get(`${stream}.B`)!;
    for (let k = 0; k < r * d; k++) B[k] = c * wB[k]!;
    weights.set(`${stream}.A`, A);
    weights.set(`${stream}.B`, B);
    if (fisher && u.fisher) {
      const fA = new Float32Array(d * R);
      const uA = u.fisher.get(`${stream}.A`)!;
      for (let i = 0; i < d; i++) for (let j = 0; j < r; j++) fA[i * R + j] = uA[i * r + j]!;
      const fB = new Float32Array(R * d);
      const uB = u.fisher.get(`${stream}.B`)!;
      for (let k = 0; k < r * d; k++) fB[k] = uB[k]! / (c * c);
      fisher.set(`${stream}.A`, fA);
      fisher.set(`${stream}.B`, fB);
    }
  }
  return { ...u, weights, fisher };
}

/** Why a strategy cannot merge mixed ranks with `merge`, or undefined when it can. */
export function rankMergeProblem(spec: StrategySpec, merge: RankMerge): string | undefined {
  if (merge === 'zero-pad') return undefined;
  if (!['fedavg', 'fedprox', 'fisher'].includes(spec.name))
    return `rank merge svd works with strategies fedavg, fedprox and fisher, not '${spec.name}' (use rankMerge zero-pad)`;
  if (spec.clipNorm !== undefined || spec.dp)
    return 'rank merge svd has no clipping or differential privacy (their bounds are on factor updates); use rankMerge zero-pad';
  // A server step keeps its momentum over factors, which the svd merge re-factorizes every round.
  const server = spec as { serverLr?: number; serverMomentum?: number };
  if ((server.serverLr ?? 1) !== 1 || (server.serverMomentum ?? 0) !== 0)
    return 'rank merge svd applies the merged update as it is (no serverLr or serverMomentum); use rankMerge zero-pad';
  return undefined;
}

/**
 * The strategy for a federation whose clients have mixed ranks: updates of any rank 1..R go in, a rank-R global
 * adapter comes out. A round whose updates are all rank R is merged by the strategy itself, so a federation of
 * rank-R clients gets exactly the strategy's result. With `svd`, Fisher merging weighs clients by λ (uniform or
 * samples) in mixed rounds: a diagonal Fisher over factors of different shapes does not give one over the product.
 */
export function createRankAwareStrategy(
  spec: StrategySpec,
  s: RankSettings,
  /** The strategy for `spec` when the caller keeps one across rounds (server optimizers' state). */
  inner: Strategy = createStrategy(spec),
): Strategy {
  const problem = rankMergeProblem(spec, s.merge);
  if (problem) throw new Error(problem);
  return {
    name: inner.name,
    needsFisher: inner.needsFisher,
    streaming: inner.streaming,
    clientConfig: () => inner.clientConfig(),
    begin(global, round) {
      const base = inner.begin(global, round);
      if (s.merge === 'zero-pad')
        return {
          get count() {
            return base.count;
          },
          add: (u) => base.add(zeroPadUpdate(global, u, s)),
          finish: () => base.finish(),
        };
      const weightOf = (u: ClientUpdate) => (spec.name === 'fisher' && spec.lambda !== 'samples' ? 1 : u.samples);
      return productMerge(global, s, base, weightOf);
    },
  };
}

/** The `svd` merge: a streaming weighted mean of the clients' product-space changes (two d×d float64 sums). */
function productMerge(
  global: AdapterWeights,
  s: RankSettings,
  base: RoundAggregator,
  weightOf: (u: ClientUpdate) => number,
): RoundAggregator {
  const d = s.dModel;
  const R = s.adapter.rank;
  const product = (w: AdapterWeights, stream: string, rank: number) =>
    lowRankProduct(w.get(`${stream}.A`)!, w.get(`${stream}.B`)!, d, scaleOf(s, rank));
  // The product each rank starts from (its projection of the global), once per rank and round.
  const starts = new Map<number, Map<string, Float64Array>>();
  const startOf = (rank: number) => {
    let m = starts.get(rank);
    if (!m) {
      const p = projectAdapter(global, rank, s);
      m = new Map(ADAPTER_STREAMS.map((st) => [st, product(p, st, rank)]));
      starts.set(rank, m);
    }
    return m;
  };
  const sums = new Map(ADAPTER_STREAMS.map((st) => [st, new Float64Array(d * d)]));
  let total = 0;
  let count = 0;
  let allFullRank = true;
  return {
    get count() {
      return count;
    },
    add(u) {
      const rank = adapterRank(u.weights, d);
      checkRank(rank, s);
      const weight = weightOf(u);
      if (!(weight > 0)) throw new Error(`update weight must be > 0, got ${weight}`);
      if (rank === R) base.add(u);
      else allFullRank = false;
      const start = startOf(rank);
      for (const st of ADAPTER_STREAMS) {
        const p = product(u.weights, st, rank);
        const p0 = start.get(st)!;
        const sum = sums.get(st)!;
        for (let i = 0; i < sum.length; i++) sum[i]! += weight * (p[i]! - p0[i]!);
      }
      total += weight;
      count++;
    },
    finish() {
      if (count === 0) throw new Error('no updates to aggregate');
      if (allFullRank) return base.finish();
      const out: AdapterWeights = new Map();
      for (const st of ADAPTER_STREAMS) {
        const P = product(global, st, R);
        const sum = sums.get(st)!;
        const merged = P.map((x, i) => x + sum[i]! / total);
        const f = factorize(merged, d, R, scaleOf(s, R), global.get(`${st}.A`));
        out.set(`${st}.A`, f.A);
        out.set(`${st}.B`, f.B);
      }
      return out;
    },
  };
}
