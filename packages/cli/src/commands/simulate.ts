import { join } from 'node:path';
import { loadConfig, simulate as runSimulation } from '@fednano/simulation';
import type { Command } from '../main.js';
import { UsageError } from '../output.js';
import { reportResult, roundPrinter } from './federation-output.js';
import { intOption } from './shared.js';

export const simulateCommand: Command = {
  summary: 'run a federation in one process: N clients, the llm-host and the aggregator; accuracy after each round',
  usage: '<config.yaml> [--out DIR] [--rounds N] [--threads N] [--json]',
  options: {
    out: { type: 'string' },
    rounds: { type: 'string' },
    threads: { type: 'string' },
  },
  positionals: true,
  async run(values, out, positionals = []) {
    const [path, ...extra] = positionals;
    if (!path || extra.length)
      throw new UsageError('give exactly one config file, e.g. fednano simulate examples/quickstart.yaml');
    const config = await loadConfig(path);
    if (values.rounds !== undefined) config.spec.rounds = intOption(values, 'rounds', 1, 10000);
    // ONNX Runtime threads per session: speed only, the numbers are the same (README, Quick start).
    const threads = values.threads === undefined ? undefined : intOption(values, 'threads', 1, 64);
    const result = await runSimulation(config, { log: (m) => out.log(m), onRound: roundPrinter(out), threads });
    await reportResult(out, config, result, String(values.out ?? join('results', config.metadata.name)));
  },
};
