import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AdapterWeights } from './adapters.js';
import { type ClientUpdate, createStrategy, type StrategySpec } from './strategies.js';

const w = (...x: number[]): AdapterWeights => new Map([['p', Float32Array.from(x)]]);
const update = (client: string, weights: number[], samples = 1, fisher?: number[]): ClientUpdate => ({
  client,
  weights: w(...weights),
  samples,
  fisher: fisher && w(...fisher),
});
function run(spec: StrategySpec, global: number[], updates: ClientUpdate[]): number[] {
  const agg = createStrategy(spec).begin(w(...global), 1);
  for (const u of updates) agg.add(u);
  assert.equal(agg.count, updates.length);
  return Array.from(agg.finish().get('p')!);
}
const close = (a: number[], b: number[], tol = 1e-6) =>
  b.forEach((x, i) => {
    assert.ok(Math.abs(a[i]! - x) < tol, `index ${i}: ${a[i]} vs ${x}`);
  });

describe('strategies on hand-computed cases', () => {
  test('FedAvg weights by samples', () => {
    close(run({ name: 'fedavg' }, [0, 0], [update('a', [1, 2], 1), update('b', [3, 6], 3)]), [2.5, 5]);
  });
  test('FedProx aggregates like FedAvg and asks clients for the proximal term', () => {
    close(run({ name: 'fedprox', mu: 0.1 }, [1], [update('a', [2], 1), update('b', [4], 1)]), [3]);
    assert.deepEqual(createStrategy({ name: 'fedprox', mu: 0.1 }).clientConfig(), { proximalMu: 0.1 });
  });
  test('Fisher merging: sum(l F theta) / (sum(l F) + eps), uniform and sample-weighted lambda', () => {
    const updates = [update('a', [1, 7], 1, [3, 0]), update('b', [5, 9], 3, [1, 0])];
    const uniform = run({ name: 'fisher', epsilon: 0 }, [0, 0], updates);
    close(uniform, [(3 * 1 + 1 * 5) / 4], 1e-6);
    // Coordinate 2 has no Fisher mass anywhere: the lambda-weighted mean (uniform: (7 + 9) / 2) is used.
    close(uniform.slice(1), [8]);
    close(run({ name: 'fisher', lambda: 'samples', epsilon: 0 }, [0, 0], updates), [
      (1 * 3 * 1 + 3 * 1 * 5) / (1 * 3 + 3 * 1),
      (7 + 27) / 4,
    ]);
    // epsilon shrinks towards zero where the Fisher mass is small
    close(run({ name: 'fisher', epsilon: 1 }, [0], [update('a', [2], 1, [1])]), [1]);
  });
  test('Fisher cap: each diagonal scaled to mean 1 and capped, so inflating it buys a client nothing', () => {
    // a's Fisher [2, 6] has mean 4 -> [0.5, 1.5]; b's [1, 1] -> [1, 1]; with cap 1.2: a [0.5, 1.2].
    const honest = [update('a', [0, 0], 1, [2, 6]), update('b', [4, 4], 1, [1, 1])];
    const capped = run({ name: 'fisher', epsilon: 0, fisherCap: 1.2 }, [0, 0], honest);
    close(capped, [(0.5 * 0 + 1 * 4) / 1.5, (1.2 * 0 + 1 * 4) / 2.2]);
    // b inflates its diagonal a thousandfold: without the cap it takes over, with it nothing changes.
    const poisoned = [honest[0]!, update('b', [4, 4], 1, [1000, 1000])];
    close(run({ name: 'fisher', epsilon: 0, fisherCap: 1.2 }, [0, 0], poisoned), capped);
    assert.ok(run({ name: 'fisher', epsilon: 0 }, [0, 0], poisoned)[0]! > 3.99);
  });
  test('FedAdam and FedYogi: one server step from the mean update', () => {
    const tau = 1e-3;
    const vAdam = 0.99 * tau * tau + 0.01;
    close(run({ name: 'fedadam', serverLr: 0.01, beta1: 0.9, beta2: 0.99, tau }, [0], [update('a', [1])]), [
      (0.01 * 0.1) / (Math.sqrt(vAdam) + tau),
    ]);
    const vYogi = tau * tau + 0.01; // v - (1 - b2) g^2 sign(v - g^2), with v < g^2
    close(run({ name: 'fedyogi', serverLr: 0.01, beta1: 0.9, beta2: 0.99, tau }, [0], [update('a', [1])]), [
      (0.01 * 0.1) / (Math.sqrt(vYogi) + tau),
    ]);
  });
  test('FedAdam keeps its moments across rounds', () => {
    const s = createStrategy({ name: 'fedadam', serverLr: 0.1 });
    let g = w(0);
    for (let r = 0; r < 3; r++) {
      const a = s.begin(g, r);
      a.add(update('a', [g.get('p')![0]! + 1]));
      g = a.finish();
    }
    // By hand: g = 1 every round; m = 0.9 m + 0.1; v = 0.99 v + 0.01; step = 0.1 m / (sqrt(v) + 1e-3).
    let [m, v, x] = [0, 1e-6, 0];
    for (let r = 0; r < 3; r++) {
      m = 0.9 * m + 0.1;
      v = 0.99 * v + 0.01;
      x += (0.1 * m) / (Math.sqrt(v) + 1e-3);
    }
    close([g.get('p')![0]!], [x], 1e-5); // 0.389: momentum makes later steps larger
  });
  test('server lr and momentum (FedAvgM) step on the merged update and keep the buffer across rounds', () => {
    // From global 1, a (theta 2, F 3) and b (theta 6, F 1): Fisher merge 3 (pseudo-gradient 2), mean 4 (3).
    const updates = (g: number) => [update('a', [g + 1], 1, [3]), update('b', [g + 5], 1, [1])];
    close(run({ name: 'fisher', epsilon: 0, serverLr: 2 }, [1], updates(1)), [1 + 2 * 2]);
    close(run({ name: 'fedavg', serverLr: 0.5 }, [1], updates(1)), [1 + 0.5 * 3]);
    const s = createStrategy({ name: 'fisher', epsilon: 0, serverLr: 3, serverMomentum: 0.5 });
    let g = w(1);
    const seen: number[] = [];
    for (let r = 1; r <= 3; r++) {
      const a = s.begin(g, r);
      for (const u of updates(g.get('p')![0]!)) a.add(u);
      g = a.finish();
      seen.push(g.get('p')![0]!);
    }
    // Every round's merged update is 2: buffer 2, 3, 3.5; steps 6, 9, 10.5.
    close(seen, [7, 16, 26.5], 1e-5);
  });
  test('coordinate median and trimmed mean resist an outlier', () => {
    close(run({ name: 'median' }, [0], [update('a', [1]), update('b', [100]), update('c', [3])]), [3]);
    close(
      run({ name: 'median' }, [0], [update('a', [1]), update('b', [2]), update('c', [10]), update('d', [20])]),
      [6],
    );
    close(
      run(
        { name: 'trimmed-mean', trim: 0.25 },
        [0],
        [update('a', [1]), update('b', [2]), update('c', [10]), update('d', [100])],
      ),
      [6],
    );
    assert.equal(createStrategy({ name: 'median' }).streaming, false);
    assert.equal(createStrategy({ name: 'fisher' }).streaming, true);
  });
  test('update-norm clipping bounds each client before averaging', () => {
    close(run({ name: 'fedavg', clipNorm: 1 }, [0, 0], [update('a', [3, 4])]), [0.6, 0.8]);
    close(run({ name: 'fedavg', clipNorm: 10 }, [0, 0], [update('a', [3, 4])]), [3, 4]);
  });
  test('central DP: equal weights, clipping, and Gaussian noise of std z C / K', () => {
    close(
      run(
        { name: 'fedavg', dp: { clipNorm: 1, noiseMultiplier: 0 } },
        [0],
        [update('a', [5], 10), update('b', [-0.5], 1)],
      ),
      [0.25],
    );
    const n = 20_000;
    const agg = createStrategy({ name: 'fedavg', dp: { clipNorm: 2, noiseMultiplier: 1.5, seed: 3 } }).begin(
      new Map([['p', new Float32Array(n)]]),
      1,
    );
    for (const c of ['a', 'b', 'c', 'd'])
      agg.add({ client: c, samples: 1, weights: new Map([['p', new Float32Array(n)]]) });
    const out = agg.finish().get('p')!;
    const std = Math.sqrt(out.reduce((s, x) => s + x * x, 0) / n);
    assert.ok(Math.abs(std - (1.5 * 2) / 4) < 0.02, `std ${std}`);
  });
  test('bad updates and settings are refused with a reason', () => {
    assert.throws(() => run({ name: 'fisher' }, [0], [update('a', [1])]), /needs the Fisher diagonal from client a/);
    assert.throws(() => run({ name: 'fedavg' }, [0, 0], [update('a', [1])]), /'p' is missing or has the wrong size/);
    assert.throws(() => run({ name: 'fedavg' }, [0], []), /no updates/);
    assert.throws(
      () => createStrategy({ name: 'median', dp: { clipNorm: 1, noiseMultiplier: 1 } }),
      /dp is available with averaging/,
    );
    assert.throws(() => createStrategy({ name: 'trimmed-mean', trim: 0.5 }), /0 <= trim < 0.5/);
    assert.throws(() => createStrategy({ name: 'fisher', serverMomentum: 1 }), /serverMomentum must be in \[0, 1\)/);
    assert.throws(() => createStrategy({ name: 'fedavg', serverLr: 0 }), /serverLr must be > 0/);
    assert.throws(() => createStrategy({ name: 'nope' } as never), /unknown strategy 'nope'/);
  });
});
