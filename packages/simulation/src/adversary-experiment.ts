import { fileURLToPath } from 'node:url';
import type { AttackKind } from './adversary.js';
import { checkConfig, type SimulationConfig } from './config.js';

/**
 * The Byzantine-robustness experiment shared by the CI test (byzantine.test.ts) and `npm run bench:byzantine`:
 * 10 Fashion-VQA clients with IID data, all of them every round, 2 of them Byzantine; FedAvg against the robust
 * aggregators. Only the budget differs between the test and the benchmark.
 */
export interface ByzantineBudget {
  rounds: number;
  localSteps: number;
  batchSize: number;
  learningRate: number;
  examplesPerClient: number;
  testImagesPerDomain: number;
  /** Update-norm bound for the clipped strategies, near the honest updates' norm at this budget. */
  clipNorm: number;
}

/**
 * The budget of the CI test and of the full benchmark: about 30 s per simulation on 2 cores. clipNorm 1 is about the
 * median norm of the honest updates at this budget (1.5-1.7 in round 1, 0.9-1.3 later, measured).
 */
export const BYZANTINE_BUDGET: ByzantineBudget = {
  rounds: 6,
  localSteps: 10,
  batchSize: 16,
  learningRate: 0.005,
  examplesPerClient: 60,
  testImagesPerDomain: 100,
  clipNorm: 1,
};

/**
 * The CI test's thresholds (accuracy fractions, against clean FedAvg): FedAvg's least loss under sign-flip and scale;
 * how far below clean FedAvg median and trimmed mean may end under sign-flip; and the same for the clipped strategies,
 * which bound each update but still let 2 sign-flipped updates of the clip norm in, so they learn more slowly.
 */
export const BYZANTINE_MIN_DROP = 0.2;
export const BYZANTINE_MARGIN = 0.1;
export const BYZANTINE_CLIP_MARGIN = 0.25;

export const BYZANTINE_CLIENTS = 10;
export const BYZANTINE_ADVERSARIES = 2;
/** s of every attack: 10 x the honest update (scale), -10 x (sign-flip), noise of 10 x its norm (random). */
export const BYZANTINE_SCALE = 10;

export type StrategyConfig = SimulationConfig['spec']['strategy'];

/** FedAvg and the robust options with the CI test's margin for each; trim 0.2 drops 2 of 10 updates at each end of every coordinate. */
export const byzantineStrategies = (
  clipNorm: number,
): { key: string; label: string; strategy: StrategyConfig; margin: number }[] => [
  { key: 'fedavg', label: 'fedavg', strategy: { name: 'fedavg' }, margin: Number.NaN },
  { key: 'median', label: 'median', strategy: { name: 'median' }, margin: BYZANTINE_MARGIN },
  {
    key: 'trimmed_mean',
    label: 'trimmed-mean 0.2',
    strategy: { name: 'trimmed-mean', trim: 0.2 },
    margin: BYZANTINE_MARGIN,
  },
  {
    key: 'fedavg_clip',
    label: `fedavg + clip ${clipNorm}`,
    strategy: { name: 'fedavg', clipNorm },
    margin: BYZANTINE_CLIP_MARGIN,
  },
  {
    key: 'fisher_clip',
    label: `fisher + clip ${clipNorm}`,
    strategy: { name: 'fisher', clipNorm },
    margin: BYZANTINE_CLIP_MARGIN,
  },
  {
    key: 'fisher_clip_cap',
    label: `fisher + clip ${clipNorm} + Fisher cap ${BYZANTINE_FISHER_CAP}`,
    strategy: { name: 'fisher', clipNorm, fisherCap: BYZANTINE_FISHER_CAP },
    margin: BYZANTINE_CLIP_MARGIN,
  },
];

/** Per-coordinate cap on a client's mean-normalized Fisher diagonal (strategy option fisherCap). */
export const BYZANTINE_FISHER_CAP = 10;
/** A poisoned Fisher diagonal: the adversaries multiply theirs by this to dominate Fisher merging. */
export const BYZANTINE_FISHER_POISON = 1000;

const MODEL = fileURLToPath(new URL('../../../models/reference', import.meta.url));

export function byzantineConfig(
  budget: ByzantineBudget,
  strategy: StrategyConfig,
  opts: { seed: number; attack?: AttackKind; fisherScale?: number },
): SimulationConfig {
  return checkConfig({
    apiVersion: 'fednano.io/v1alpha1',
    kind: 'Simulation',
    metadata: { name: `byzantine-${strategy.name}-${opts.attack ?? 'clean'}-${opts.seed}` },
    spec: {
      model: { path: MODEL },
      adapter: { rank: 8, alpha: 16 },
      strategy,
      training: {
        localSteps: budget.localSteps,
        batchSize: budget.batchSize,
        learningRate: budget.learningRate,
        optimizer: 'adamw',
        fisherSamples: 16,
      },
      participation: { clientsPerRound: BYZANTINE_CLIENTS },
      rounds: budget.rounds,
      simulation: {
        clients: BYZANTINE_CLIENTS,
        seed: opts.seed,
        method: 'federated',
        data: {
          domains: ['fashion'],
          partition: { kind: 'iid' },
          examplesPerClient: budget.examplesPerClient,
        },
        evaluation: { testImagesPerDomain: budget.testImagesPerDomain },
        ...(opts.attack && {
          adversaries: {
            clients: BYZANTINE_ADVERSARIES,
            attack: opts.attack,
            scale: BYZANTINE_SCALE,
            ...(opts.fisherScale !== undefined && { fisherScale: opts.fisherScale }),
          },
        }),
      },
    },
  });
}
