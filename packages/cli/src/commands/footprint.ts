import { footprint, LLAVA_15_7B, loadModelFolder, MINIGPT4_7B, type ModelFootprint } from '@fednano/model';
import type { Command } from '../main.js';
import { millions, UsageError } from '../output.js';
import { DEFAULT_MODEL_DIR } from './shared.js';

export const footprintCommand: Command = {
  summary:
    'parameters on the server vs the client (NanoEdge) and per-round upload, for the reference model and published MLLMs',
  usage: '[--model DIR] [--ranks 8,16,32,64] [--json]',
  options: {
    model: { type: 'string', default: DEFAULT_MODEL_DIR },
    ranks: { type: 'string', default: '8,16,32,64' },
  },
  async run(values, out) {
    const ranks = String(values.ranks).split(',').map(Number);
    if (ranks.some((r) => !Number.isInteger(r) || r < 1))
      throw new UsageError(`--ranks must be positive integers, got '${values.ranks}'`);
    const folder = await loadModelFolder(String(values.model));
    const c = folder.manifest.paramCounts;
    const reference: ModelFootprint = {
      name: `reference (${values.model})`,
      dModel: folder.manifest.config.dModel,
      llm: c.llm,
      embeddings: c.embeddings,
      visionEncoder: c.encoder,
      connector: c.connector,
    };
    const rows = [reference, LLAVA_15_7B, MINIGPT4_7B].map((m) => footprint(m, ranks));
    for (const r of rows) out.record({ event: 'footprint', ...r });
    out.table(
      ['model', 'total', 'LLM (server)', 'NanoEdge (client)', 'client storage cut', 'without embeddings'],
      rows.map((r) => [
        r.model,
        millions(r.totalParams),
        millions(r.serverParams),
        millions(r.nanoEdgeParams),
        `${(100 * r.storageReduction).toFixed(2)}%`,
        `${(100 * r.storageReductionWithoutEmbeddings).toFixed(2)}%`,
      ]),
    );
    out.text('');
    out.text('per-round upload: NanoAdapter parameters as a share of all parameters (x2 with the Fisher diagonal)');
    out.table(
      ['model', ...ranks.map((r) => `r=${r}`), ...ranks.map((r) => `r=${r} +Fisher`)],
      rows.map((r) => [
        r.model,
        ...r.uploads.map((u) => `${u.percentOfTotal.toPrecision(3)}%`),
        ...r.uploads.map((u) => `${u.withFisherPercent.toPrecision(3)}%`),
      ]),
    );
  },
};
