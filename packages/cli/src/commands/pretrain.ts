import { FULL_RECIPE, pretrain, SMOKE_RECIPE, writeModelFolder } from '@fednano/model';
import type { Command } from '../main.js';
import { millions, percent } from '../output.js';
import { choice, DEFAULT_MODEL_DIR, intOption } from './shared.js';

export const pretrainCommand: Command = {
  summary: 'build the reference model: staged pretraining (text LM, then caption alignment), then freeze and export',
  usage: '[--out DIR] [--recipe full|smoke] [--seed N] [--json]',
  options: {
    out: { type: 'string', default: DEFAULT_MODEL_DIR },
    recipe: { type: 'string', default: 'full' },
    seed: { type: 'string', default: '0' },
  },
  async run(values, out) {
    const base = choice(values, 'recipe', ['full', 'smoke'] as const) === 'full' ? FULL_RECIPE : SMOKE_RECIPE;
    const recipe = { ...base, seed: intOption(values, 'seed', 0) };
    const started = performance.now();
    const result = await pretrain(recipe, (m) => out.log(m));
    const seconds = (performance.now() - started) / 1000;
    const command = `fednano pretrain --recipe ${recipe.name} --seed ${recipe.seed}`;
    const manifest = await writeModelFolder(String(values.out), { ...result, recipe }, { seconds, command });
    const m = manifest.metrics;
    out.record({ event: 'model', dir: values.out, seconds, paramCounts: manifest.paramCounts, metrics: m });
    out.text(`model written to ${values.out} in ${seconds.toFixed(0)} s`);
    out.table(
      ['part', 'parameters', 'file bytes'],
      Object.entries(manifest.parts).map(([name, p]) => [name, millions(p.params), p.bytes.toLocaleString('en')]),
    );
    out.text(
      `text LM: held-out loss ${m.text.heldOutLoss.toFixed(3)} (perplexity ${m.text.heldOutPerplexity.toFixed(2)})`,
    );
    out.text(`captions: held-out loss ${m.caption.heldOutLoss.toFixed(3)}`);
    out.text(`zero-shot VQA: ${percent(m.zeroShot.accuracy)} on ${m.zeroShot.examples} downstream test questions`);
  },
};
