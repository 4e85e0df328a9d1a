/**
 * npm run bench:ranks [-- --seeds 0,1,2]: heterogeneous clients. The same federation (Fashion-VQA, 10 clients,
 * Dirichlet alpha 0.5, the accuracy benchmark's quick budget) with every client at rank 16, every client at rank 4,
 * and mixed ranks 4 / 8 / 16 (client i gets [4, 8, 16][i mod 3]) merged by `svd` and by `zero-pad`, under FedAvg and
 * Fisher merging: final test accuracy and test loss (mean NLL of the correct answer, which separates runs whose
 * accuracy ties). Prints the table, rewrites its block of docs/results.md, and ends with a RESULT line.
 */
import { parseArgs } from 'node:util';
import { checkConfig, type SimulationConfig, simulate } from '../packages/simulation/src/index.js';
import { printResult, printTable, writeGeneratedBlock } from './report.js';

const { values: flags } = parseArgs({ options: { seeds: { type: 'string', default: '0,1,2' } } });
const seeds = flags.seeds.split(',').map(Number);
if (seeds.some((s) => !Number.isInteger(s) || s < 0)) {
  process.stderr.write(`--seeds: give non-negative integers separated by commas, got '${flags.seeds}'\n`);
  process.exit(2);
}
const BUDGET = { rounds: 3, localSteps: 15, examples: 150, test: 80, domain: 'fashion', alpha: 0.5 } as const;
const MIXED = [4, 8, 16];

type Strategy = SimulationConfig['spec']['strategy'];
interface Row {
  key: string;
  label: string;
  strategy: Strategy;
  rank: number;
  ranks?: number[];
  merge?: 'svd' | 'zero-pad';
}
const ROWS: Row[] = [];
for (const [name, strategy] of [
  ['fedavg', { name: 'fedavg' }],
  ['fisher', { name: 'fisher' }],
] as const) {
  const label = name === 'fedavg' ? 'FedAvg' : 'Fisher';
  ROWS.push({ key: `${name}_r16`, label: `${label}, all rank 16`, strategy, rank: 16 });
  if (name === 'fedavg') ROWS.push({ key: `${name}_r4`, label: `${label}, all rank 4`, strategy, rank: 4 });
  for (const merge of ['svd', 'zero-pad'] as const)
    ROWS.push({
      key: `${name}_mixed_${merge.replace('-', '')}`,
      label: `${label}, ranks 4/8/16, ${merge}`,
      strategy,
      rank: 16,
      ranks: MIXED,
      merge,
    });
}

function config(row: Row, seed: number): SimulationConfig {
  return checkConfig({
    apiVersion: 'fednano.io/v1alpha1',
    kind: 'Simulation',
    metadata: { name: `ranks-${row.key.replace(/_/g, '-')}-${seed}` },
    spec: {
      model: { path: 'models/reference' },
      adapter: { rank: row.rank, alpha: 32, ...(row.merge ? { rankMerge: row.merge } : {}) },
      strategy: row.strategy,
      training: {
        localSteps: BUDGET.localSteps,
        batchSize: 16,
        learningRate: 0.003,
        optimizer: 'adamw',
        fisherSamples: 64,
      },
      participation: { clientsPerRound: 10 },
      rounds: BUDGET.rounds,
      simulation: {
        clients: 10,
        seed,
        method: 'federated',
        data: {
          domains: [BUDGET.domain],
          partition: { kind: 'dirichlet', alpha: BUDGET.alpha },
          examplesPerClient: BUDGET.examples,
        },
        evaluation: { testImagesPerDomain: BUDGET.test },
        ...(row.ranks ? { adapterRanks: row.ranks } : {}),
      },
    },
  });
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: number[]) =>
  xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1));
const started = performance.now();
const HEADERS = ['clients', 'accuracy % (mean ± std)', 'per seed %', 'test loss (mean)', 'upload B/client/round'];
const rows: (string | number)[][] = [];
const result: Record<string, number> = {};
for (const row of ROWS) {
  const acc: number[] = [];
  const loss: number[] = [];
  let upload = 0;
  for (const seed of seeds) {
    const r = await simulate(config(row, seed));
    acc.push(r.final.accuracy);
    loss.push(r.rounds.at(-1)!.loss);
    upload = mean(r.rounds.slice(1).map((x) => x.uploadBytesPerClient));
    process.stderr.write(
      `${row.label} seed ${seed}: ${(100 * r.final.accuracy).toFixed(1)}% (${r.seconds.toFixed(0)} s)\n`,
    );
  }
  rows.push([
    row.label,
    `${(100 * mean(acc)).toFixed(1)} ± ${(100 * std(acc)).toFixed(1)}`,
    acc.map((a) => (100 * a).toFixed(1)).join(', '),
    mean(loss).toFixed(4),
    Math.round(upload),
  ]);
  result[row.key] = mean(acc);
  result[`${row.key}_loss`] = mean(loss);
}
printTable(HEADERS, rows);

const minutes = ((performance.now() - started) / 60000).toFixed(0);
await writeGeneratedBlock('docs/results.md', 'bench:ranks', [
  `Command: \`npm run bench:ranks -- --seeds ${seeds.join(',')}\` (${minutes} minutes on the 2-core development machine).`,
  `Setup: Fashion-VQA, 10 clients (Dirichlet alpha ${BUDGET.alpha}), all clients every round, ${BUDGET.rounds} rounds of ${BUDGET.localSteps} local AdamW`,
  `steps, ${BUDGET.examples} questions per client, ${BUDGET.test} test images, alpha 32; seeds ${seeds.join(', ')}. Ranks 4/8/16: client i trains`,
  'rank [4, 8, 16][i mod 3] (four rank-4, three rank-8, three rank-16 clients), the global adapter is rank 16.',
  '',
  `| ${HEADERS.join(' | ')} |`,
  `| ${HEADERS.map(() => '---').join(' | ')} |`,
  ...rows.map((r) => `| ${r.join(' | ')} |`),
]);
printResult(result);
