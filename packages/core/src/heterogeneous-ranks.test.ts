import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gaussian, rng } from '@fednano/onnx-graph';
import { ADAPTER_STREAMS, type AdapterWeights, adapterScale, adapterShapes } from './adapters.js';
import {
  adapterRank,
  createRankAwareStrategy,
  projectAdapter,
  type RankMerge,
  type RankSettings,
  zeroPadUpdate,
} from './heterogeneous-ranks.js';
import { lowRankProduct } from './low-rank.js';
import { type ClientUpdate, createStrategy, type StrategySpec } from './strategies.js';

const d = 8;
const R = 4;
const alpha = 8;
const settings = (merge: RankMerge, rank = R): RankSettings => ({ dModel: d, adapter: { rank, alpha }, merge });

/** Random factors of the given rank (B nonzero, unlike a fresh adapter). */
function adapter(rank: number, seed: number, scale = 1): AdapterWeights {
  const normal = gaussian(rng(seed));
  return new Map(
    Object.entries(adapterShapes(d, rank)).map(([k, [r, c]]) => [
      k,
      Float32Array.from({ length: r * c }, () => scale * normal()),
    ]),
  );
}
const update = (client: string, weights: AdapterWeights, samples: number, fisher?: AdapterWeights): ClientUpdate => ({
  client,
  weights,
  samples,
  fisher,
});
const products = (w: AdapterWeights, rank: number) =>
  ADAPTER_STREAMS.map((s) =>
    lowRankProduct(w.get(`${s}.A`)!, w.get(`${s}.B`)!, d, adapterScale({ rank, alpha: alpha })),
  );
const maxDiff = (x: ArrayLike<number>, y: ArrayLike<number>) =>
  Array.from(x).reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
/** Asserts two adapters compute the same products (per stream), within tol. */
function assertSameProducts(a: AdapterWeights, ra: number, b: AdapterWeights, rb: number, tol = 1e-5) {
  const pb = products(b, rb);
  for (const [i, p] of products(a, ra).entries())
    assert.ok(maxDiff(p, pb[i]!) < tol, `stream ${i}: ${maxDiff(p, pb[i]!)}`);
}
function merge(spec: StrategySpec, s: RankSettings, global: AdapterWeights, updates: ClientUpdate[]) {
  const agg = createRankAwareStrategy(spec, s).begin(global, 1);
  for (const u of updates) agg.add(u);
  assert.equal(agg.count, updates.length);
  return agg.finish();
}

describe('heterogeneous ranks', () => {
  test('all clients at the federation rank: exactly the strategy’s own result, for both merges', () => {
    const global = adapter(R, 1);
    const updates = [1, 2, 3].map((i) => update(`c${i}`, adapter(R, 10 + i), i, adapter(R, 20 + i, 0.1)));
    for (const u of updates)
      for (const f of u.fisher!.values()) for (let i = 0; i < f.length; i++) f[i] = Math.abs(f[i]!);
    const specs: StrategySpec[] = [{ name: 'fedavg' }, { name: 'fisher' }, { name: 'fisher', lambda: 'samples' }];
    for (const spec of specs) {
      const plain = createStrategy(spec).begin(global, 1);
      for (const u of updates) plain.add(u);
      const expected = plain.finish();
      for (const m of ['svd', 'zero-pad'] as const)
        assert.deepEqual(merge(spec, settings(m), global, updates), expected, `${spec.name} ${m}`);
    }
    const median = createStrategy({ name: 'median' }).begin(global, 1);
    for (const u of updates) median.add(u);
    assert.deepEqual(merge({ name: 'median' }, settings('zero-pad'), global, updates), median.finish());
    // A rank-R client starts from the global adapter itself.
    assert.equal(projectAdapter(global, R, settings('svd')), global);
  });

  test('zero-pad: truncation keeps the leading components’ function, padding it back is exact', () => {
    const global = adapter(R, 2);
    const s = settings('zero-pad');
    const low = projectAdapter(global, 2, s);
    assert.equal(adapterRank(low, d), 2);
    // The rank-2 client's function is the global's first two components: s_R A[:, :2] B[:2] = s_2 A_2 B_2.
    const lead = new Map(global);
    for (const st of ADAPTER_STREAMS) {
      lead.set(
        `${st}.B`,
        global.get(`${st}.B`)!.map((x, i) => (i < 2 * d ? x : 0)),
      );
    }
    assertSameProducts(low, 2, lead, R);
    // Invariance: a client that trains nothing pads back to the global adapter, bit for bit.
    const padded = zeroPadUpdate(global, update('c', low, 5), s);
    for (const [k, v] of global) assert.ok(maxDiff(padded.weights.get(k)!, v) < 1e-6, k);
    // So FedAvg over untouched low-rank clients leaves the global unchanged.
    const out = merge({ name: 'fedavg' }, s, global, [
      update('a', low, 3),
      update('b', projectAdapter(global, 1, s), 2),
    ]);
    for (const [k, v] of global) assert.ok(maxDiff(out.get(k)!, v) < 1e-6, k);
  });

  test('zero-pad: padded components carry zero Fisher, so Fisher merging takes them from the clients that hold them', () => {
    const global = adapter(R, 3);
    const s = settings('zero-pad');
    const full = adapter(R, 4);
    const low = adapter(2, 5);
    const ones = (rank: number) =>
      new Map(Object.entries(adapterShapes(d, rank)).map(([k, [r, c]]) => [k, new Float32Array(r * c).fill(1)]));
    const out = merge({ name: 'fisher', epsilon: 0 }, s, global, [
      update('full', full, 1, ones(R)),
      update('low', low, 1, ones(2)),
    ]);
    for (const st of ADAPTER_STREAMS) {
      const A = out.get(`${st}.A`)!;
      const fA = full.get(`${st}.A`)!;
      const lA = low.get(`${st}.A`)!;
      for (let i = 0; i < d; i++) {
        // Components 2, 3: only the rank-R client holds them.
        for (let j = 2; j < R; j++) assert.ok(Math.abs(A[i * R + j]! - fA[i * R + j]!) < 1e-6);
        // Components 0, 1: the mean of both (equal Fisher).
        for (let j = 0; j < 2; j++) assert.ok(Math.abs(A[i * R + j]! - (fA[i * R + j]! + lA[i * 2 + j]!) / 2) < 1e-6);
      }
    }
  });

  test('svd: a rank-r client starts from the best rank-r approximation, exact when the product has rank r', () => {
    const s = settings('svd');
    // A global adapter whose product has rank 2 (two zero rows of B): projecting it to rank 2 loses nothing.
    const global = adapter(R, 6);
    for (const st of ADAPTER_STREAMS) global.get(`${st}.B`)!.fill(0, 2 * d);
    const low = projectAdapter(global, 2, s);
    assertSameProducts(low, 2, global, R);
    // A fresh global (B = 0) projects to orthonormal A and B = 0: trainable, and still the identity adapter.
    const fresh = adapter(R, 7);
    for (const st of ADAPTER_STREAMS) fresh.get(`${st}.B`)!.fill(0);
    const p = projectAdapter(fresh, 3, s);
    for (const st of ADAPTER_STREAMS) {
      assert.ok(p.get(`${st}.B`)!.every((x) => x === 0));
      const A = p.get(`${st}.A`)!;
      for (let j = 0; j < 3; j++) {
        let n = 0;
        for (let i = 0; i < d; i++) n += A[i * 3 + j]! ** 2;
        assert.ok(Math.abs(n - 1) < 1e-5);
      }
    }
  });

  test('svd: the merged product is the global’s plus the weighted mean of the clients’ product changes', () => {
    // R = d: a rank-d factorization is exact, so the merge formula can be checked entry by entry.
    const s = settings('svd', d);
    const global = adapter(d, 8);
    const clients = [
      { rank: 2, samples: 1 },
      { rank: 5, samples: 3 },
      { rank: d, samples: 2 },
    ].map((c, i) => ({ ...c, weights: adapter(c.rank, 30 + i) }));
    const out = merge(
      { name: 'fedavg' },
      s,
      global,
      clients.map((c, i) => update(`c${i}`, c.weights, c.samples)),
    );
    const total = clients.reduce((n, c) => n + c.samples, 0);
    ADAPTER_STREAMS.forEach((_, st) => {
      const expected = Float64Array.from(products(global, d)[st]!);
      for (const c of clients) {
        const change = products(c.weights, c.rank)[st]!;
        const start = products(projectAdapter(global, c.rank, s), c.rank)[st]!;
        for (let i = 0; i < expected.length; i++) expected[i]! += (c.samples / total) * (change[i]! - start[i]!);
      }
      assert.ok(maxDiff(products(out, d)[st]!, expected) < 1e-4);
    });
    // Untouched low-rank clients change nothing: the global's product comes back (at rank R, exactly).
    const g4 = adapter(R, 9);
    const s4 = settings('svd');
    const same = merge({ name: 'fedavg' }, s4, g4, [
      update('a', projectAdapter(g4, 1, s4), 1),
      update('b', projectAdapter(g4, 3, s4), 1),
    ]);
    assertSameProducts(same, R, g4, R);
  });

  test('refusals: a rank above the federation’s, svd with a strategy it cannot weigh', () => {
    const global = adapter(R, 10);
    for (const m of ['svd', 'zero-pad'] as const) {
      const agg = createRankAwareStrategy({ name: 'fedavg' }, settings(m)).begin(global, 1);
      assert.throws(() => agg.add(update('x', adapter(R + 1, 11), 1)), /rank must be an integer from 1 to 4, got 5/);
      assert.throws(() => projectAdapter(global, 0, settings(m)), /from 1 to 4, got 0/);
    }
    assert.throws(() => createRankAwareStrategy({ name: 'median' }, settings('svd')), /use rankMerge zero-pad/);
    assert.throws(
      () => createRankAwareStrategy({ name: 'fedavg', clipNorm: 1 }, settings('svd')),
      /no clipping or differential privacy/,
    );
    assert.doesNotThrow(() => createRankAwareStrategy({ name: 'median' }, settings('zero-pad')));
  });
});
