import {
  DOMAINS,
  type Domain,
  loadDomain,
  type PartitionSpec,
  partition,
  partitionStats,
  rng,
  type SplitName,
  type VqaExample,
  vqaExamples,
} from '@fednano/data';
import type { Command } from '../main.js';
import { percent, UsageError } from '../output.js';
import { choice, intOption, numberOption } from './shared.js';

export const dataStats: Command = {
  summary: 'partition downstream VQA data across clients and print per-client statistics',
  usage:
    '[--domain fashion|digits|emoji|all] [--clients N] [--partition iid|dirichlet|domain|question-type] [--alpha A] [--split train] [--seed N] [--json]',
  options: {
    domain: { type: 'string', default: 'fashion' },
    clients: { type: 'string', default: '10' },
    partition: { type: 'string', default: 'dirichlet' },
    alpha: { type: 'string', default: '0.5' },
    split: { type: 'string', default: 'train' },
    seed: { type: 'string', default: '0' },
  },
  async run(values, out) {
    const domain = choice(values, 'domain', [...DOMAINS, 'all'] as const);
    const kind = choice(values, 'partition', ['iid', 'dirichlet', 'domain', 'question-type'] as const);
    const split = choice(values, 'split', ['train', 'val', 'test', 'pretrain'] as const) as SplitName;
    const clients = intOption(values, 'clients', 1, 10_000);
    const seed = intOption(values, 'seed', 0);
    if (kind === 'domain' && domain !== 'all') throw new UsageError('--partition domain needs --domain all');
    const spec: PartitionSpec =
      kind === 'dirichlet' || kind === 'question-type' ? { kind, alpha: numberOption(values, 'alpha', 0) } : { kind };
    const domains: Domain[] = domain === 'all' ? [...DOMAINS] : [domain];
    const examples: VqaExample[] = [];

    let classes = 0;
    for (const d of domains) {
      const { set, splits } = await loadDomain(d, seed);

      examples.push(...vqaExamples(set, splits[split]).map((e) => ({ ...e, label: e.label + classes })));
      classes += set.classNames.length;
    }
    const labels = examples.map((e) => e.label);
    const parts = partition(
      { labels, domains: examples.map((e) => e.domain), types: examples.map((e) => e.type) },
      clients,
      spec,
      rng(seed),
    );
    const stats = partitionStats(parts, labels, classes);
    for (const s of stats) {
      const types = new Set(parts[s.client]!.map((i) => examples[i]!.type));
      out.record({ event: 'client', ...s, questionTypes: [...types].sort() });
    }
    out.text(
      `${examples.length} ${split} questions over ${domains.join(', ')}; ${clients} clients, ${kind}${'alpha' in spec ? ` alpha=${spec.alpha}` : ''}`,
    );
    out.table(
      ['client', 'questions', 'labels seen', 'top label share', 'label entropy (bits)', 'question types'],
      stats.map((s) => [
        s.client,
        s.count,
        s.histogram.filter((h) => h > 0).length,
        percent(s.dominantShare),
        s.entropyBits.toFixed(2),
        new Set(parts[s.client]!.map((i) => examples[i]!.type)).size,
      ]),
    );
  },
};
