/** Shared output for benchmarks: a human table, then last a single `RESULT key=value ...` line (see CONVENTIONS). */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';

export function printTable(headers: string[], rows: (string | number)[][]): void {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => c.padStart(widths[i]!)).join('  ');
  process.stdout.write(`${line(headers)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n`);
  for (const r of cells.slice(1)) process.stdout.write(`${line(r)}\n`);
}

export function printResult(values: Record<string, number | string>): void {
  const fields = Object.entries(values).map(([k, v]) => `${k}=${typeof v === 'number' ? round(v) : v}`);
  process.stdout.write(`RESULT ${fields.join(' ')}\n`);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export const round = (x: number, digits = 3): number => Number(x.toFixed(digits));

/**
 * Replaces one generated block of a docs page (between `<!-- <marker>: generated from here to its end marker -->` and
 * `<!-- end of <marker> -->`; appended when the page has none), keeping what was written around it by hand. The page
 * is then formatted as Biome prints it, so a benchmark run leaves `npm run lint` green.
 */
export async function writeGeneratedBlock(path: string, marker: string, lines: string[]): Promise<void> {
  const begin = `<!-- ${marker}: generated from here to its end marker -->`;
  const end = `<!-- end of ${marker} -->`;
  const old = await readFile(path, 'utf8').catch(() => '');
  const i = old.indexOf(begin);
  const j = old.indexOf(end);
  const block = [begin, '', ...lines, '', end].join('\n');
  await writeFile(
    path,
    i >= 0 && j > i ? old.slice(0, i) + block + old.slice(j + end.length) : `${old}${old ? '\n' : ''}${block}\n`,
  );
  await promisify(execFile)('npx', ['biome', 'format', '--write', path]).catch((e: Error) => {
    process.stderr.write(`could not format ${path} with Biome (${e.message}); run npm run format\n`);
  });
}
