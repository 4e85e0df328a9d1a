import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { AttackKind } from './adversary.js';
import {
  BYZANTINE_BUDGET,
  BYZANTINE_CLIP_MARGIN,
  BYZANTINE_FISHER_POISON,
  BYZANTINE_MIN_DROP,
  byzantineConfig,
  byzantineStrategies,
  type StrategyConfig,
} from './adversary-experiment.js';
import { simulate } from './simulate.js';

/**
 * Byzantine robustness in CI: 10 clients, 2 of them Byzantine (s = 10), 7 real simulations (about 20 s each on 2
 * cores). FedAvg must lose at least BYZANTINE_MIN_DROP under sign-flip and under scale; under sign-flip (the attack
 * that hurts FedAvg most) median and trimmed mean must end within BYZANTINE_MARGIN of clean FedAvg, the clipped
 * strategies within BYZANTINE_CLIP_MARGIN and clearly above attacked FedAvg. Every strategy x attack is in
 * `npm run bench:byzantine` (docs/robustness.md); all of them here would not fit CI. The thresholds leave 2-5 points
 * of slack on seed 0 and were checked on seed 1 (docs/robustness.md).
 */
const SEED = Number(process.env.BYZANTINE_SEED ?? 0);

const accuracy = async (strategy: StrategyConfig, attack?: AttackKind, fisherScale?: number) => {
  const r = await simulate(byzantineConfig(BYZANTINE_BUDGET, strategy, { seed: SEED, attack, fisherScale }));
  if (attack) assert.equal(r.adversaries?.length, 2);
  return r.final.accuracy;
};
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

describe('Byzantine clients (2 of 10)', () => {
  const [fedavg, ...robust] = byzantineStrategies(BYZANTINE_BUDGET.clipNorm);
  let clean = Number.NaN;
  let signFlipped = Number.NaN;
  before(async () => {
    clean = await accuracy(fedavg!.strategy);
    signFlipped = await accuracy(fedavg!.strategy, 'sign-flip');
  });

  test(`FedAvg loses at least ${100 * BYZANTINE_MIN_DROP} points under sign-flip and under scale`, async (t) => {
    const scaled = await accuracy(fedavg!.strategy, 'scale');
    t.diagnostic(`fedavg clean ${pct(clean)}, sign-flip ${pct(signFlipped)}, scale ${pct(scaled)}`);
    assert.ok(signFlipped < clean - BYZANTINE_MIN_DROP, `clean ${pct(clean)}, sign-flip ${pct(signFlipped)}`);
    assert.ok(scaled < clean - BYZANTINE_MIN_DROP, `clean ${pct(clean)}, scale ${pct(scaled)}`);
  });

  for (const { label, strategy, margin } of robust)
    test(`${label} under sign-flip ends within ${100 * margin} points of clean FedAvg`, async (t) => {
      const attacked = await accuracy(strategy, 'sign-flip');
      t.diagnostic(`fedavg clean ${pct(clean)}, fedavg sign-flip ${pct(signFlipped)}, ${label} ${pct(attacked)}`);
      assert.ok(attacked > clean - margin, `clean FedAvg ${pct(clean)}, ${label} under sign-flip ${pct(attacked)}`);
      // Whatever the margin, a robust option must undo most of the damage done to FedAvg.
      assert.ok(
        attacked - signFlipped > (clean - signFlipped) / 2,
        `${label} ${pct(attacked)} recovers less than half of FedAvg's loss (${pct(signFlipped)} vs ${pct(clean)})`,
      );
    });

  test(`a poisoned Fisher diagonal (x${BYZANTINE_FISHER_POISON}) with sign-flip: the Fisher cap keeps Fisher merging within ${100 * BYZANTINE_CLIP_MARGIN} points`, async (t) => {
    const capped = robust.find((s) => s.key === 'fisher_clip_cap')!;
    const attacked = await accuracy(capped.strategy, 'sign-flip', BYZANTINE_FISHER_POISON);
    t.diagnostic(`fedavg clean ${pct(clean)}, ${capped.label} with a poisoned Fisher ${pct(attacked)}`);
    assert.ok(attacked > clean - BYZANTINE_CLIP_MARGIN, `clean FedAvg ${pct(clean)}, capped Fisher ${pct(attacked)}`);
  });
});
