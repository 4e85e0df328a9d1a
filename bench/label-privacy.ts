/**
 * Label privacy against a curious llm-host: accuracy and bytes of normal split training, label-private mode, and
 * label-private mode with randomized-response label noise, on the quickstart federation (fewer rounds). For each
 * noisy setting: the rate at which a host reading labels off the gradients is right (1 − ρ + ρ/k) and the per-use ε
 * of label differential privacy (k = answer candidates per question). Baseline: normal split training, same run.
 *
 *   npm run bench:label-privacy [-- --rounds N]
 */
import { parseArgs } from 'node:util';
import { randomizedResponseEpsilon } from '@fednano/core';
import { loadConfig, type SimulationConfig, simulate } from '@fednano/simulation';
import { printResult, printTable, round } from './report.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '6' } } });
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1)
  throw new Error(`--rounds must be a positive integer, got ${values.rounds}`);

const base = await loadConfig('examples/quickstart.yaml');
base.spec.rounds = rounds;
// Digits questions: "what digit" has 10 answer candidates, the yes/no questions 2 (packages/data/src/vqa.ts).
const K = [10, 2];

const variants: { name: string; split?: SimulationConfig['spec']['simulation']['split']; rate?: number }[] = [
  { name: 'normal (targets sent)' },
  { name: 'label-private', split: { labelPrivate: true } },
  { name: 'label-private, noise 0.25', split: { labelPrivate: true, labelNoise: 0.25 }, rate: 0.25 },
  { name: 'label-private, noise 0.5', split: { labelPrivate: true, labelNoise: 0.5 }, rate: 0.5 },
];

const rows: (string | number)[][] = [];
const result: Record<string, number> = {};
let baseline = 0;
for (const v of variants) {
  const config = structuredClone(base);
  if (v.split) config.spec.simulation.split = v.split;
  const started = performance.now();
  const r = await simulate(config);
  const seconds = (performance.now() - started) / 1000;
  const accuracy = r.final.accuracy * 100;
  if (!v.split) baseline = accuracy;
  const rate = v.rate;
  const hostRight = K.map((k) => (rate === undefined ? 100 : (1 - rate + rate / k) * 100).toFixed(1)).join(' / ');
  const epsilon = K.map((k) => (rate === undefined ? '∞' : randomizedResponseEpsilon(rate, k).toFixed(2))).join(' / ');
  const splitBytes = r.rounds.at(-1)!.splitBytesPerSample;
  rows.push([
    v.name,
    accuracy.toFixed(1),
    (accuracy - baseline).toFixed(1),
    v.split ? hostRight : '100 (targets sent)',
    epsilon,
    Math.round(splitBytes),
    seconds.toFixed(0),
  ]);
  const key = v.name
    .replace(/[^a-z0-9]+/gi, '_')
    .replace(/_+$/, '')
    .toLowerCase();
  result[`${key}_accuracy`] = round(accuracy, 1);
}
printTable(
  [
    'mode',
    'accuracy %',
    'vs normal',
    'host reads true label % (k=10 / 2)',
    'ε per use (k=10 / 2)',
    'split bytes/sample',
    'seconds',
  ],
  rows,
);
printResult({ rounds, ...result });
