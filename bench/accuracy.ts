/**
 * npm run bench:accuracy [-- --quick | --ablation]: accuracy of FedNano and its baselines on Fashion-VQA and
 * Emoji-VQA with 10 label-skewed clients (Dirichlet alpha 0.5 and 0.1), a fixed round budget, over several seeds
 * (the table, in docs/results.md). --quick: the table on a short budget (docs/results-quick.md), then the ablation:
 * variants of FedNano-Fisher against the centralized adapters at the full budget's rounds and steps (seed 0, alpha
 * 0.5), what the gap to centralized is made of (docs/results.md). --ablation: the ablation alone. Each part rewrites
 * only its own marked block of the page; prints the tables and a RESULT line.
 */
import { parseArgs } from 'node:util';
import { checkConfig, type SimulationConfig, simulate } from '../packages/simulation/src/index.js';
import { printResult, printTable, writeGeneratedBlock } from './report.js';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    ablation: { type: 'boolean', default: false },
    /**
     * Part of the table only (comma-separated): method keys (see METHODS), seeds, alphas; or another round budget.
     * A partial table goes to its own block of the page, which says what ran, and leaves the full table as it was.
     */
    methods: { type: 'string' },
    seeds: { type: 'string' },
    alphas: { type: 'string' },
    rounds: { type: 'string' },
  },
});
const quick = flags.quick || flags.ablation;
const FULL = { seeds: [0, 1, 2], rounds: 5, examples: 150, test: 80 };
const numbers = (list: string | undefined) => list?.split(',').map(Number);
const budget = { ...(quick ? { ...FULL, seeds: [0], rounds: 3 } : FULL) };
budget.seeds = numbers(flags.seeds) ?? budget.seeds;
budget.rounds = numbers(flags.rounds)?.[0] ?? budget.rounds;
const ALPHAS = numbers(flags.alphas) ?? [0.5, 0.1];
const partial = (['methods', 'seeds', 'alphas', 'rounds'] as const).some((k) => flags[k] !== undefined);
const selection = (['methods', 'seeds', 'alphas', 'rounds'] as const)
  .filter((k) => flags[k] !== undefined)
  .map((k) => ` --${k} ${flags[k]}`)
  .join('');

type Strategy = SimulationConfig['spec']['strategy'];
type Training = SimulationConfig['spec']['training'];
/**
 * What every method trains with, centralized included (its compute per round: localSteps x clients). Batch 4 x 60
 * steps: the same 240 samples per client and round as the earlier batch 16 x 15, in four times the sequential
 * steps; the ablation found sequential depth, not label skew, to be what federated rounds lack (docs/results.md).
 */
const TRAINING: Training = {
  localSteps: 60,
  batchSize: 4,
  learningRate: 0.003,
  optimizer: 'adamw',
  fisherSamples: 64,
};

interface Method {
  key: string;
  label: string;
  method: SimulationConfig['spec']['simulation']['method'];
  strategy: Strategy;
}
const METHODS: Method[] = [
  { key: 'centralized', label: 'centralized (adapters only)', method: 'centralized', strategy: { name: 'fedavg' } },
  { key: 'local', label: 'local-only', method: 'local-only', strategy: { name: 'fedavg' } },
  { key: 'fedavg', label: 'FedNano-FedAvg', method: 'federated', strategy: { name: 'fedavg' } },
  { key: 'fedprox', label: 'FedNano-FedProx (mu 0.1)', method: 'federated', strategy: { name: 'fedprox', mu: 0.1 } },
  // The plain merge (server lr 1): the ablation below found no server step or client lr that does better.
  { key: 'fisher', label: 'FedNano-Fisher', method: 'federated', strategy: { name: 'fisher' } },
  { key: 'lora', label: 'FedAvg-LoRA (full model on clients)', method: 'fedavg-lora', strategy: { name: 'fedavg' } },
];

const chosen = flags.methods?.split(',').map((k) => k.trim());
const unknown = chosen?.filter((k) => !METHODS.some((m) => m.key === k));
if (unknown?.length) {
  process.stderr.write(`--methods: unknown ${unknown.join(', ')} (known: ${METHODS.map((m) => m.key).join(', ')})\n`);
  process.exit(2);
}
const tableMethods = chosen ? METHODS.filter((m) => chosen.includes(m.key)) : METHODS;

interface Run {
  domain: 'fashion' | 'emoji';
  alpha: number;
  /** Default: Dirichlet label skew with `alpha`. */
  partition?: { kind: 'iid' };
  seed: number;
  method: Method['method'];
  strategy: Strategy;
  rounds: number;
  training: Training;
}

function config(r: Run): SimulationConfig {
  return checkConfig({
    apiVersion: 'fednano.io/v1alpha1',
    kind: 'Simulation',
    metadata: { name: `bench-${r.domain}-${String(r.alpha).replace('.', '')}-${r.seed}` },
    spec: {
      model: { path: 'models/reference' },
      adapter: { rank: 16, alpha: 32 },
      strategy: r.strategy,
      training: r.training,
      participation: { clientsPerRound: 10 },
      rounds: r.rounds,
      simulation: {
        clients: 10,
        seed: r.seed,
        method: r.method,
        data: {
          domains: [r.domain],
          partition: r.partition ?? { kind: 'dirichlet', alpha: r.alpha },
          examplesPerClient: budget.examples,
        },
        evaluation: { testImagesPerDomain: budget.test },
      },
    },
  });
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: number[]) =>
  xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1));
const pct = (xs: number[]) => `${(100 * mean(xs)).toFixed(1)} ± ${(100 * std(xs)).toFixed(1)}`;
const points = (x: number) => (100 * x).toFixed(1);
const alphaKey = (alpha: number) => `a${String(alpha).replace('.', '')}`;
const started = performance.now();
const result: Record<string, number> = {};

// ---- the table: every method, both datasets, both skews, every seed ---------------------------------------------

const TABLE_HEADERS = [
  'dataset',
  'alpha',
  'method',
  'accuracy % (mean ± std)',
  'upload B/client/round',
  'split B/sample',
  'client params',
];
async function table(): Promise<(string | number)[][]> {
  const rows: (string | number)[][] = [];
  for (const domain of ['fashion', 'emoji'] as const)
    for (const alpha of ALPHAS) {
      const means = new Map<string, number>();
      for (const m of tableMethods) {
        const acc: number[] = [];
        let upload = 0;
        let split = 0;
        let clientParams = 0;
        for (const seed of budget.seeds) {
          const r = await simulate(
            config({
              domain,
              alpha,
              seed,
              method: m.method,
              strategy: m.strategy,
              rounds: budget.rounds,
              training: TRAINING,
            }),
          );
          acc.push(r.final.accuracy);
          const trained = r.rounds.slice(1);
          upload = mean(trained.map((x) => x.uploadBytesPerClient));
          split = mean(trained.map((x) => x.splitBytesPerSample));
          clientParams = r.clientParams;
          process.stderr.write(
            `${domain} alpha=${alpha} ${m.label} seed ${seed}: ${points(r.final.accuracy)}% (${r.seconds.toFixed(0)} s; by round: ${r.rounds.map((x) => points(x.accuracy)).join(' ')})\n`,
          );
        }
        rows.push([domain, alpha, m.label, pct(acc), Math.round(upload), Math.round(split), clientParams]);
        means.set(m.key, mean(acc));
      }
      const key = `${domain}_${alphaKey(alpha)}`;
      for (const [k, v] of means) result[`${key}_${k}`] = v;
      // Points FedNano-Fisher is below the centralized adapters (the goal: <= 3 at alpha 0.5).
      const central = means.get('centralized');
      const fisher = means.get('fisher');
      if (central !== undefined && fisher !== undefined) result[`${key}_gap_fisher`] = 100 * (central - fisher);
    }
  return rows;
}

// ---- the ablation: what costs FedNano-Fisher its distance to centralized ------------------------------------------

/**
 * One change at a time from the plain Fisher merge, at the full budget's rounds and steps, seed 0, alpha 0.5,
 * against the centralized adapters of the same seed and budget. A variant that changes local training changes it
 * for the federated clients only; the baseline is the best of centralized at the table's settings, at client lr
 * 0.01 and at the earlier batch 16 x 15 steps, so no variant's setting is credited to federation.
 */
interface Variant {
  key: string;
  label: string;
  strategy?: Strategy;
  training?: Partial<Training>;
  rounds?: number;
  partition?: Run['partition'];
}
const PLAIN: Strategy = { name: 'fisher' };
const SAME_SAMPLES = (batchSize: number) => ({
  batchSize,
  localSteps: (TRAINING.batchSize * TRAINING.localSteps) / batchSize,
});
const VARIANTS: Variant[] = [
  { key: 'plain', label: `Fisher merge, batch ${TRAINING.batchSize} x ${TRAINING.localSteps} steps (the defaults)` },
  { key: 'iid', label: 'no label skew (IID clients)', partition: { kind: 'iid' } },
  { key: 'b16', label: 'batch 16 x 15 steps (the earlier default, same samples)', training: SAME_SAMPLES(16) },
  { key: 'b8', label: 'batch 8 x 30 steps (same samples)', training: SAME_SAMPLES(8) },
  { key: 'b2', label: 'batch 2 x 120 steps (same samples)', training: SAME_SAMPLES(2) },
  { key: 'lr01', label: 'client lr 0.01', training: { learningRate: 0.01 } },
  { key: 'slr2', label: 'server lr 2 (FedAvgM step on the merge)', strategy: { ...PLAIN, serverLr: 2 } },
  { key: 'smom', label: 'server momentum 0.5 (FedAvgM)', strategy: { ...PLAIN, serverMomentum: 0.5 } },
  { key: 'fisher150', label: 'Fisher from all 150 questions (not 64)', training: { fisherSamples: 150 } },
  { key: 'fedavg', label: 'FedAvg instead of Fisher', strategy: { name: 'fedavg' } },
  {
    key: 'r10',
    label: `10 rounds of ${TRAINING.localSteps / 2} steps (the same client compute)`,
    rounds: 10,
    training: { localSteps: TRAINING.localSteps / 2 },
  },
];
const ABLATION_HEADERS = [
  'variant',
  'fashion %',
  'fashion gap',
  'emoji %',
  'emoji gap',
  'mean gap (points below centralized)',
];
async function ablation(): Promise<(string | number)[][]> {
  const seed = 0;
  const alpha = 0.5;
  const base = { alpha, seed, rounds: FULL.rounds, training: TRAINING };
  // The baseline gets the best of the table's client lr and the largest one a variant tries, so a variant's better
  // learning rate is not credited to federation.
  const central = new Map<string, number>();
  const rows: (string | number)[][] = [];
  const baselines: [string, Partial<Training>][] = [
    [`lr ${TRAINING.learningRate}, batch ${TRAINING.batchSize} (the table's)`, {}],
    ['lr 0.01', { learningRate: 0.01 }],
    ['batch 16 x 15 steps', SAME_SAMPLES(16)],
  ];
  for (const [label, training] of baselines) {
    const row: (string | number)[] = [`centralized (adapters only), ${label}`];
    for (const domain of ['fashion', 'emoji'] as const) {
      const r = await simulate(
        config({
          ...base,
          domain,
          method: 'centralized',
          strategy: { name: 'fedavg' },
          training: { ...TRAINING, ...training },
        }),
      );
      central.set(domain, Math.max(central.get(domain) ?? 0, r.final.accuracy));
      row.push(points(r.final.accuracy), '');
      process.stderr.write(
        `ablation ${domain} centralized ${label}: ${points(r.final.accuracy)}% (${r.seconds.toFixed(0)} s)\n`,
      );
    }
    rows.push([...row, '']);
  }
  for (const v of VARIANTS) {
    const acc = new Map<string, number>();
    for (const domain of ['fashion', 'emoji'] as const) {
      const r = await simulate(
        config({
          ...base,
          domain,
          method: 'federated',
          strategy: v.strategy ?? PLAIN,
          ...(v.partition ? { partition: v.partition } : {}),
          rounds: v.rounds ?? FULL.rounds,
          training: { ...TRAINING, ...v.training },
        }),
      );
      acc.set(domain, r.final.accuracy);
      process.stderr.write(`ablation ${domain} ${v.label}: ${points(r.final.accuracy)}% (${r.seconds.toFixed(0)} s)\n`);
    }
    const gaps = (['fashion', 'emoji'] as const).map((d) => central.get(d)! - acc.get(d)!);
    rows.push([
      v.label,
      points(acc.get('fashion')!),
      points(gaps[0]!),
      points(acc.get('emoji')!),
      points(gaps[1]!),
      points(mean(gaps)),
    ]);
    result[`ablation_${v.key}_gap`] = 100 * mean(gaps);
  }
  return rows;
}

const mdTable = (headers: string[], rows: (string | number)[][]) => [
  `| ${headers.join(' | ')} |`,
  `| ${headers.map(() => '---').join(' | ')} |`,
  ...rows.map((r) => `| ${r.join(' | ')} |`),
];

const minutes = () => ((performance.now() - started) / 60000).toFixed(0);
if (!flags.ablation) {
  const rows = await table();
  printTable(TABLE_HEADERS, rows);
  await writeGeneratedBlock(
    quick ? 'docs/results-quick.md' : 'docs/results.md',
    `bench:accuracy ${partial ? 'partial table' : 'table'}`,
    [
      `Command: \`npm run bench:accuracy${quick || partial ? ' --' : ''}${quick ? ' --quick' : ''}${selection}\` (${minutes()} minutes on the 2-core development machine).`,
      '',
      `Setup: the committed reference model (frozen), 10 clients, Dirichlet label skew, all clients every round,`,
      `${budget.rounds} rounds of ${TRAINING.localSteps} local AdamW steps (batch ${TRAINING.batchSize}, lr ${TRAINING.learningRate}), NanoAdapters rank 16 / alpha 32,`,
      `${budget.examples} training questions per client, ${budget.test} test images per domain (every question type of each),`,
      `seeds ${budget.seeds.join(', ')}. Centralized trains one adapter on all clients' questions with the same number of`,
      "steps per round as all clients together; local-only is the mean test accuracy of the ten clients' own adapters.",
      'Upload: encoded update per client per round (adapters, plus the Fisher diagonal for FedNano-Fisher). Split: bytes',
      'of activations up and gradients down per training sample, which the paper does not count. Client params: encoder,',
      'connector, embedding table and adapters.',
      '',
      ...(partial
        ? [`Part of the table only: ${tableMethods.map((m) => m.label).join('; ')}; alpha ${ALPHAS.join(', ')}.`, '']
        : []),
      ...mdTable(TABLE_HEADERS, rows),
      '',
      'FedAvg-LoRA: every client holds the whole model and trains rank-16 LoRA in all attention and MLP projections of',
      'the LLM, running the LLM itself (no split traffic); its upload is the LoRA weights.',
    ],
  );
}
if (quick) {
  const t0 = performance.now();
  const rows = await ablation();
  process.stdout.write('\n');
  printTable(ABLATION_HEADERS, rows);
  // At the full budget's rounds and steps, so it belongs with the full table.
  await writeGeneratedBlock('docs/results.md', 'bench:accuracy ablation', [
    `Command: \`npm run bench:accuracy -- --ablation\` (also the second part of \`-- --quick\`; ${((performance.now() - t0) / 60000).toFixed(0)} minutes on the`,
    "2-core development machine). One change at a time from the plain Fisher merge, at the full budget's",
    `${FULL.rounds} rounds of ${TRAINING.localSteps} local steps, seed 0, alpha 0.5; gap: points below the centralized adapters of the same`,
    "seed and budget, the best of its three rows (the table's settings, client lr 0.01, batch 16 x 15 steps).",
    '',
    ...mdTable(ABLATION_HEADERS, rows),
  ]);
}
printResult(result);
