import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runFederation } from '@fednano/local-cluster';
import { loadConfig } from '@fednano/simulation';
import type { Command } from '../main.js';
import { UsageError } from '../output.js';
import { reportResult, roundPrinter } from './federation-output.js';
import { intOption } from './shared.js';

export const runCommand: Command = {
  summary:
    'run a federation as real local processes: nats-server, llm-host (gRPC), aggregator (JetStream), one client-agent per client',
  usage: '<config.yaml> [--out DIR] [--rounds N] [--deadline SECONDS] [--keep-work-dir] [--insecure] [--json]',
  options: {
    out: { type: 'string' },
    rounds: { type: 'string' },
    deadline: { type: 'string' },
    'keep-work-dir': { type: 'boolean', default: false },
    // Secured by default (NATS NKey users with least privilege, mutual TLS to the llm-host), as in a cluster.
    insecure: { type: 'boolean', default: false },
  },
  positionals: true,
  async run(values, out, positionals = []) {
    const [path, ...extra] = positionals;
    if (!path || extra.length)
      throw new UsageError('give exactly one config file, e.g. fednano run examples/quickstart.yaml');
    const config = await loadConfig(path);
    if (values.rounds !== undefined) config.spec.rounds = intOption(values, 'rounds', 1, 10000);
    const deadline = values.deadline === undefined ? 600 : intOption(values, 'deadline', 10, 604800);
    const workDir = await mkdtemp(join(tmpdir(), `fednano-run-${config.metadata.name}-`));
    const keep = values['keep-work-dir'] === true;
    if (keep) out.log(`work dir (client shards, service logs): ${workDir}`);
    const tty = !out.json && process.stderr.isTTY;
    const steps = new Map<string, string>();
    const result = await runFederation(
      config,
      { workDir, keepWorkDir: keep, roundDeadlineSeconds: deadline, insecure: values.insecure === true },
      {
        log: (m) => out.log(m),
        onRound: roundPrinter(out),
        onProgress: (p) => {
          out.record({ event: 'progress', ...p });
          if (!tty) return;
          steps.set(p.client, p.phase === 'training' ? `${p.step}/${p.steps}` : p.phase);
          const line = [...steps].map(([c, s]) => `${c.replace('client-', 'c')}:${s}`).join(' ');
          process.stderr.write(`\r  round ${p.round}  ${line}`.padEnd(100).slice(0, 120));
        },
        onRoundStarted: () => steps.clear(),
      },
    );
    if (tty) process.stderr.write('\n');
    await reportResult(out, config, result, String(values.out ?? join('results', `${config.metadata.name}-run`)));
  },
};
