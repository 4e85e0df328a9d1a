import { parseArgs } from 'node:util';
import { dataStats } from './commands/data-stats.js';
import { evaluate } from './commands/eval.js';
import { footprintCommand } from './commands/footprint.js';
import { pretrainCommand } from './commands/pretrain.js';
import { runCommand } from './commands/run.js';
import { shardCommand } from './commands/shard.js';
import { simulateCommand } from './commands/simulate.js';
import { verify } from './commands/verify.js';
import { Output, UsageError } from './output.js';

export interface Command {
  summary: string;
  usage: string;
  options: NonNullable<Parameters<typeof parseArgs>[0]>['options'];
  /** Whether the command takes positional arguments (e.g. a config file). */
  positionals?: boolean;
  run(values: Record<string, string | boolean | undefined>, out: Output, positionals?: string[]): Promise<void>;
}

const COMMON = {
  json: { type: 'boolean' as const, default: false },
  debug: { type: 'boolean' as const, default: false },
  help: { type: 'boolean' as const, short: 'h', default: false },
};

export const COMMANDS: Record<string, Command> = {
  simulate: simulateCommand,
  run: runCommand,
  pretrain: pretrainCommand,
  eval: evaluate,
  footprint: footprintCommand,
  'data-stats': dataStats,
  shard: shardCommand,
  verify,
};

function help(): string {
  const lines = ['usage: fednano <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(12)} ${c.summary}`);
  lines.push('', 'common options: --json (one JSON object per line on stdout), --debug (stack traces), --help');
  return lines.join('\n');
}

/** Runs the CLI and returns the exit code. Errors a user can fix print one line; --debug adds the stack. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const debug = rest.includes('--debug');
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${help()}\n`);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  try {
    if (!command) throw new UsageError(`unknown command '${name}' (commands: ${Object.keys(COMMANDS).join(', ')})`);
    let values: Record<string, string | boolean | undefined>;
    let positionals: string[];
    try {
      ({ values, positionals } = parseArgs({
        args: rest,
        options: { ...COMMON, ...command.options },
        strict: true,
        allowPositionals: command.positionals === true,
      }));
    } catch (e) {
      throw new UsageError(`${(e as Error).message.replace(/\.$/, '')}; see 'fednano ${name} --help'`);
    }
    if (values.help) {
      process.stdout.write(`usage: fednano ${name} ${command.usage}\n\n${command.summary}\n`);
      return 0;
    }
    await command.run(values, new Output(values.json === true), positionals);
    return 0;
  } catch (e) {
    const err = e as Error;
    process.stderr.write(`fednano${name && command ? ` ${name}` : ''}: ${err.message}\n`);
    if (debug && err.stack) process.stderr.write(`${err.stack}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}
