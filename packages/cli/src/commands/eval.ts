import { DOMAINS, type Domain, loadDomain, rng, shuffle, vqaExamples } from '@fednano/data';
import { evaluateVqa, loadModelFolder, mergeReports, openModel } from '@fednano/model';
import type { Command } from '../main.js';
import { percent, UsageError } from '../output.js';
import { evaluateSavedAdapter } from './eval-adapter.js';
import { choice, DEFAULT_MODEL_DIR, intOption } from './shared.js';

export const evaluate: Command = {
  summary:
    'closed-set VQA accuracy per question type: of the frozen model (zero-shot), or with --adapter of a saved global adapter on a shard',
  usage:
    '[--model DIR] [--split test|val] [--images N] [--domains fashion,digits,emoji] [--seed N] [--json]\n' +
    '       fednano eval --adapter FILE --alpha A --shard DIR [--model DIR] [--json]\n' +
    '       fednano eval --adapter NS/FED/round-N --nats URL [--nats-creds FILE] --shard DIR [--model DIR] [--json]',
  options: {
    adapter: { type: 'string' },
    shard: { type: 'string' },
    alpha: { type: 'string' },
    nats: { type: 'string' },
    'nats-creds': { type: 'string' },
    model: { type: 'string', default: DEFAULT_MODEL_DIR },
    split: { type: 'string', default: 'test' },
    images: { type: 'string', default: '300' },
    domains: { type: 'string', default: DOMAINS.join(',') },
    seed: { type: 'string', default: '0' },
  },
  async run(values, out) {
    if (values.adapter !== undefined) return evaluateSavedAdapter(values, out);
    if (values.shard !== undefined)
      throw new UsageError('--shard scores a saved adapter: give --adapter FILE or an Object Store object too');
    const split = choice(values, 'split', ['test', 'val'] as const);
    const images = intOption(values, 'images', 1);
    const domains = String(values.domains).split(',') as Domain[];
    for (const d of domains)
      if (!DOMAINS.includes(d)) throw new UsageError(`unknown domain '${d}' (domains: ${DOMAINS.join(', ')})`);
    const folder = await loadModelFolder(String(values.model));
    const model = await openModel(folder);
    try {
      const reports = [];
      for (const domain of domains) {
        const { set, splits } = await loadDomain(domain, folder.manifest.recipe.seed);
        const chosen = shuffle([...splits[split]], rng(intOption(values, 'seed', 0) + 2)).slice(0, images);
        reports.push(await evaluateVqa(model, set, vqaExamples(set, chosen)));
      }
      const all = mergeReports(reports);
      for (const t of all.perType) out.record({ event: 'accuracy', ...t });
      out.record({ event: 'summary', split, examples: all.examples, accuracy: all.accuracy });
      out.table(
        ['question type', 'examples', 'accuracy', 'chance'],
        all.perType.map((t) => [t.type, t.examples, percent(t.accuracy), percent(t.chance)]),
      );
      out.text(`overall ${percent(all.accuracy)} on ${all.examples} ${split} questions`);
    } finally {
      await model.close();
    }
  },
};
