import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { accuracyChart, type RoundRecord, type SimulationConfig, type SimulationResult } from '@fednano/simulation';
import { type Output, percent } from '../output.js';

/** What `simulate` and `run` print, identically: a progress line (or JSON record) per round, then the result. */
export function roundPrinter(out: Output): (r: RoundRecord, total: number) => void {
  const tty = !out.json && process.stderr.isTTY;
  return (r, total) => {
    out.record({ event: 'round', ...r });
    const bar = '#'.repeat(Math.round((20 * r.round) / total)).padEnd(20, '.');
    const what = r.round === 0 ? 'before training' : `round ${r.round}/${total}`;
    const line = `[${bar}] ${what}  accuracy ${percent(r.accuracy)}  loss ${r.loss.toFixed(3)}  upload ${r.uploadBytesPerClient.toFixed(0)} B/client  (${r.seconds.toFixed(1)} s)`;
    if (tty) process.stderr.write(`\r${line}${r.round === total ? '\n' : ''}`);
    else if (!out.json) out.log(line);
  };
}

export async function reportResult(
  out: Output,
  config: SimulationConfig,
  result: SimulationResult,
  dir: string,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'results.json'), `${JSON.stringify({ config, result }, null, 2)}\n`);
  await writeFile(
    join(dir, 'accuracy.svg'),
    await accuracyChart(
      [{ label: `${result.method === 'federated' ? result.strategy : result.method}`, rounds: result.rounds }],
      config.metadata.name,
    ),
  );
  out.record({
    event: 'result',
    name: result.name,
    accuracy: result.final.accuracy,
    rounds: result.rounds.length,
    seconds: result.seconds,
    dir,
  });
  out.text('');
  const before = result.rounds[0]!;
  out.table(
    ['question type', 'before (zero-shot)', `after round ${config.spec.rounds}`],
    Object.entries(result.final.perType).map(([k, v]) => [k, percent(before.perType[k] ?? 0), percent(v)]),
  );
  out.text(
    `accuracy ${percent(before.accuracy)} before training -> ${percent(result.final.accuracy)} after round ${config.spec.rounds}; ${result.seconds.toFixed(0)} s`,
  );
  out.text(`results: ${join(dir, 'results.json')}, chart: ${join(dir, 'accuracy.svg')}`);
}
