/**
 * npm run bench:accuracy [-- --quick]: accuracy of FedNano and its baselines on Fashion-VQA and Emoji-VQA with 10
 * label-skewed clients (Dirichlet alpha 0.5 and 0.1), a fixed round budget, over several seeds. Writes
 * docs/results.md (or docs/results-quick.md with --quick) with the exact command and prints a table and a RESULT line.
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { checkConfig, type SimulationConfig, simulate } from '../packages/simulation/src/index.js';
import { printResult, printTable } from './report.js';

const { values: flags } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const quick = flags.quick;
const budget = quick
  ? { seeds: [0], rounds: 3, steps: 15, examples: 150, test: 80 }
  : { seeds: [0, 1, 2], rounds: 5, steps: 15, examples: 150, test: 80 };

interface Method {
  label: string;
  method: SimulationConfig['spec']['simulation']['method'];
  strategy: SimulationConfig['spec']['strategy'];
}
const METHODS: Method[] = [
  { label: 'centralized (adapters only)', method: 'centralized', strategy: { name: 'fedavg' } },
  { label: 'local-only', method: 'local-only', strategy: { name: 'fedavg' } },
  { label: 'FedNano-FedAvg', method: 'federated', strategy: { name: 'fedavg' } },
  { label: 'FedNano-FedProx (mu 0.1)', method: 'federated', strategy: { name: 'fedprox', mu: 0.1 } },
  { label: 'FedNano-Fisher', method: 'federated', strategy: { name: 'fisher' } },
  { label: 'FedAvg-LoRA (full model on clients)', method: 'fedavg-lora', strategy: { name: 'fedavg' } },
];

function config(domain: 'fashion' | 'emoji', alpha: number, seed: number, m: Method): SimulationConfig {
  return checkConfig({
    apiVersion: 'fednano.io/v1alpha1',
    kind: 'Simulation',
    metadata: { name: `bench-${domain}-${String(alpha).replace('.', '')}-${seed}` },
    spec: {
      model: { path: 'models/reference' },
      adapter: { rank: 16, alpha: 32 },
      strategy: m.strategy,
      training: { localSteps: budget.steps, batchSize: 16, learningRate: 0.003, optimizer: 'adamw', fisherSamples: 64 },
      participation: { clientsPerRound: 10 },
      rounds: budget.rounds,
      simulation: {
        clients: 10,
        seed,
        method: m.method,
        data: { domains: [domain], partition: { kind: 'dirichlet', alpha }, examplesPerClient: budget.examples },
        evaluation: { testImagesPerDomain: budget.test },
      },
    },
  });
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const std = (xs: number[]) =>
  xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1));
const pct = (xs: number[]) => `${(100 * mean(xs)).toFixed(1)} ± ${(100 * std(xs)).toFixed(1)}`;

const rows: (string | number)[][] = [];
const result: Record<string, number> = {};
const started = performance.now();
for (const domain of ['fashion', 'emoji'] as const)
  for (const alpha of [0.5, 0.1])
    for (const m of METHODS) {
      const acc: number[] = [];
      let upload = 0;
      let split = 0;
      let clientParams = 0;
      for (const seed of budget.seeds) {
        const r = await simulate(config(domain, alpha, seed, m));
        acc.push(r.final.accuracy);
        const trained = r.rounds.slice(1);
        upload = mean(trained.map((x) => x.uploadBytesPerClient));
        split = mean(trained.map((x) => x.splitBytesPerSample));
        clientParams = r.clientParams;
        process.stderr.write(
          `${domain} alpha=${alpha} ${m.label} seed ${seed}: ${(100 * r.final.accuracy).toFixed(1)}% (${r.seconds.toFixed(0)} s)\n`,
        );
      }
      rows.push([domain, alpha, m.label, pct(acc), Math.round(upload), Math.round(split), clientParams]);
      result[`${domain}_a${String(alpha).replace('.', '')}_${m.label.split(' ')[0]!.replace(/[^A-Za-z-]/g, '')}`] =
        mean(acc);
    }
const headers = [
  'dataset',
  'alpha',
  'method',
  'accuracy % (mean ± std)',
  'upload B/client/round',
  'split B/sample',
  'client params',
];
printTable(headers, rows);
const minutes = (performance.now() - started) / 60000;
const command = `npm run bench:accuracy${quick ? ' -- --quick' : ''}`;
const md = [
  `# Accuracy: FedNano and baselines${quick ? ' (quick budget)' : ''}`,
  '',
  `Command: \`${command}\` (${minutes.toFixed(0)} minutes on the 2-core development machine).`,
  '',
  `Setup: the committed reference model (frozen), 10 clients, Dirichlet label skew, all clients every round,`,
  `${budget.rounds} rounds of ${budget.steps} local AdamW steps (batch 16, lr 0.003), NanoAdapters rank 16 / alpha 32,`,
  `${budget.examples} training questions per client, ${budget.test} test images per domain (every question type of each),`,
  `seeds ${budget.seeds.join(', ')}. Centralized trains one adapter on all clients' questions with the same number of`,
  "steps per round as all clients together; local-only is the mean test accuracy of the ten clients' own adapters.",
  'Upload: encoded update per client per round (adapters, plus the Fisher diagonal for FedNano-Fisher). Split: bytes',
  'of activations up and gradients down per training sample, which the paper does not count. Client params: encoder,',
  'connector, embedding table and adapters.',
  '',
  `| ${headers.join(' | ')} |`,
  `| ${headers.map(() => '---').join(' | ')} |`,
  ...rows.map((r) => `| ${r.join(' | ')} |`),
  '',
  'FedAvg-LoRA: every client holds the whole model and trains rank-16 LoRA in all attention and MLP projections of',
  'the LLM, running the LLM itself (no split traffic); its upload is the LoRA weights.',
  '',
].join('\n');
await writeFile(quick ? 'docs/results-quick.md' : 'docs/results.md', md);
printResult(Object.fromEntries(Object.entries(result).map(([k, v]) => [k, v])));
