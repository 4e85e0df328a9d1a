/**
 * npm run bench:byzantine [-- --quick]: accuracy of FedAvg and the robust aggregators when 2 of 10 clients are
 * Byzantine (scale, sign-flip, random; see packages/simulation/src/adversary.ts), against clean FedAvg measured in
 * the same run. Prints the table and a RESULT line; writes docs/robustness.md (docs/robustness-quick.md with --quick).
 */
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  BYZANTINE_ADVERSARIES,
  BYZANTINE_BUDGET,
  BYZANTINE_CLIENTS,
  BYZANTINE_CLIP_MARGIN,
  BYZANTINE_FISHER_POISON,
  BYZANTINE_MARGIN,
  BYZANTINE_MIN_DROP,
  BYZANTINE_SCALE,
  type ByzantineBudget,
  byzantineConfig,
  byzantineStrategies,
} from '../packages/simulation/src/adversary-experiment.js';
import { ATTACK_KINDS, type AttackKind, simulate } from '../packages/simulation/src/index.js';
import { printResult, printTable } from './report.js';

const { values: flags } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const quick = flags.quick;
// The full run is the CI test's budget (byzantine.test.ts) over every strategy x attack; --quick is a smoke run.
const budget: ByzantineBudget = quick ? { ...BYZANTINE_BUDGET, rounds: 2, testImagesPerDomain: 30 } : BYZANTINE_BUDGET;
const seeds = [0];
/** The CI test's margin for the robust options and FedAvg's minimum loss (byzantine.test.ts). */
const MARGIN = 100 * BYZANTINE_MARGIN;
const CLIP_MARGIN = 100 * BYZANTINE_CLIP_MARGIN;
const MIN_DROP = 100 * BYZANTINE_MIN_DROP;
const FISHER_POISON = BYZANTINE_FISHER_POISON;

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const started = performance.now();
const conditions: (AttackKind | undefined)[] = [undefined, ...ATTACK_KINDS];
const strategies = byzantineStrategies(budget.clipNorm);
const rows: { key: string; label: string; acc: (number | undefined)[] }[] = [];

async function run(
  key: string,
  label: string,
  strategy: (typeof strategies)[number]['strategy'],
  fisherScale?: number,
) {
  const acc: (number | undefined)[] = [];
  for (const attack of conditions) {
    // A poisoned Fisher diagonal only exists under attack.
    if (fisherScale !== undefined && attack === undefined) {
      acc.push(undefined);
      continue;
    }
    const runs: number[] = [];
    for (const seed of seeds) {
      const r = await simulate(byzantineConfig(budget, strategy, { seed, attack, fisherScale }));
      runs.push(100 * r.final.accuracy);
      process.stderr.write(
        `${label} ${attack ?? 'clean'} seed ${seed}: ${runs.at(-1)!.toFixed(1)}% (${r.seconds.toFixed(0)} s)\n`,
      );
    }
    acc.push(mean(runs));
  }
  rows.push({ key, label, acc });
}

for (const s of strategies) await run(s.key, s.label, s.strategy);
// Poisoned Fisher diagonals against Fisher merging, without and with the Fisher cap.
for (const key of ['fisher_clip', 'fisher_clip_cap']) {
  const s = strategies.find((x) => x.key === key)!;
  await run(`${s.key}_poisoned`, `${s.label}, Fisher x${FISHER_POISON}`, s.strategy, FISHER_POISON);
}
const minutes = (performance.now() - started) / 60000;

const clean = rows[0]!.acc[0]!;
const cell = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(1));
const headers = ['strategy', 'clean', ...ATTACK_KINDS];
const table = rows.map((r) => [r.label, ...r.acc.map(cell)]);
printTable(headers, table);

// Worst accuracy of each strategy under attack, against clean FedAvg.
const worst = (i: number) => Math.min(...(rows[i]!.acc.slice(1) as number[]));
const result: Record<string, number> = { fedavg_clean: clean };
// Points against clean FedAvg: the worst attack per strategy, and FedAvg under each attack.
for (const [i, r] of rows.entries()) result[`${r.key}_worst_vs_clean`] = worst(i) - clean;
for (const [j, attack] of ATTACK_KINDS.entries())
  result[`fedavg_${attack.replace('-', '_')}_vs_clean`] = rows[0]!.acc[j + 1]! - clean;

const md = `# Byzantine robustness${quick ? ' (quick budget)' : ''}

Command: \`npm run bench:byzantine${quick ? ' -- --quick' : ''}\` (${minutes.toFixed(0)} minutes on the 2-core development machine).
Accuracy (%) of the global adapter after the last round on the test questions, seed${seeds.length > 1 ? 's' : ''} ${seeds.join(', ')}${seeds.length > 1 ? ' (mean)' : ''}.

| ${headers.join(' | ')} |
| ${headers.map(() => '---').join(' | ')} |
${table.map((r) => `| ${r.join(' | ')} |`).join('\n')}

## Setup

- ${BYZANTINE_CLIENTS} clients with IID Fashion-VQA questions (${budget.examplesPerClient} each), all of them every round, ${budget.rounds} rounds of ${budget.localSteps} local AdamW steps (batch ${budget.batchSize}, lr ${budget.learningRate}); NanoAdapters rank 8 / alpha 16 on the frozen reference model; ${budget.testImagesPerDomain} test images (every question type of each).
- ${BYZANTINE_ADVERSARIES} of the ${BYZANTINE_CLIENTS} clients are Byzantine, chosen from the seed (\`spec.simulation.adversaries\`). They train honestly, then replace their update Δ = trained − global before it is encoded and sent, with s = ${BYZANTINE_SCALE}:
  - **scale**: s·Δ (a boosted update that overshoots);
  - **sign-flip**: −s·Δ (drives the adapter against the data);
  - **random**: Gaussian noise in a random direction with norm s·‖Δ‖.
  They report their true sample count. With Fisher merging they send their honest Fisher diagonal (rows "fisher + clip"), or
  that diagonal times ${FISHER_POISON} (rows "Fisher x${FISHER_POISON}"), which without a bound buys them most of the weight of every coordinate.
- Strategies: FedAvg (sample-weighted mean); coordinate-wise median; trimmed mean dropping 20% (2 of 10) at each end of
  every coordinate; FedAvg and Fisher merging with each update clipped to L2 norm ${budget.clipNorm} (about the median honest update norm:
  1.5-1.7 in round 1, 0.9-1.3 later at this budget, measured; an adversary's is 10 times its own); Fisher merging with
  the Fisher cap (strategy option \`fisherCap\`: each client's diagonal scaled to mean 1, then capped per coordinate), which
  makes a client's Fisher weight independent of how much it inflates its diagonal.
- CI (\`packages/simulation/src/byzantine.test.ts\`, the same budget and seed 0, the cells named here) asserts that FedAvg
  loses at least ${MIN_DROP} points under sign-flip and under scale; that under sign-flip median and trimmed mean end within
  ${MARGIN} points of clean FedAvg, FedAvg + clipping and Fisher + clipping (with and without the cap) within ${CLIP_MARGIN} points; that each of
  them recovers more than half of what FedAvg loses to sign-flip; and that capped Fisher merging stays within ${CLIP_MARGIN} points
  under sign-flip with a Fisher diagonal poisoned x${FISHER_POISON}. Random is measured here only.

## Reading the table

Clean FedAvg is the reference: ${clean.toFixed(1)}%. Worst case under attack, in points against it:
${rows
  .filter((r) => r.acc[1] !== undefined)
  .map((r, i) => `${r.label} ${(worst(rows.indexOf(r)) - clean).toFixed(1)}${i < rows.length - 1 ? ';' : '.'}`)
  .join('\n')}

Median and trimmed mean discard the outliers coordinate by coordinate and stay close to clean FedAvg under every
attack. Clipping bounds what one update can do but does not remove it: under sign-flip two updates of the clip norm
still pull against the eight honest ones, so the clipped strategies learn more slowly instead of being wrecked (and
clipping at the median honest norm already slows clean training). Noise in a random direction hurts least: it is
nearly orthogonal to what the data asks for. Plain Fisher merging trusts the Fisher diagonal each client sends: an
adversary that inflates it takes most of the weight of every coordinate, and clipping only limits the size of its step.
The Fisher cap normalizes each client's diagonal before merging, so inflating it buys nothing: compare the two
"Fisher x${FISHER_POISON}" rows.

## Reproduce

\`\`\`
npm run bench:byzantine            # this table, writes docs/robustness.md
npm run bench:byzantine -- --quick # 2 rounds, a smoke run; writes docs/robustness-quick.md
node --import tsx --test packages/simulation/src/byzantine.test.ts   # the CI assertions
BYZANTINE_SEED=1 node --import tsx --test packages/simulation/src/byzantine.test.ts   # the same on another seed
\`\`\`
`;
const doc = fileURLToPath(new URL(`../docs/robustness${quick ? '-quick' : ''}.md`, import.meta.url));
await writeFile(doc, md);
// The repository's formatter pads the table, so the written file passes `npm run lint` as it is.
spawnSync(fileURLToPath(new URL('../node_modules/.bin/biome', import.meta.url)), ['format', '--write', doc], {
  stdio: 'ignore',
});
printResult(result);
