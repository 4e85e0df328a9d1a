/**
 * The CLI's output layer (see CONVENTIONS): human tables and progress on a terminal, or with --json exactly one JSON
 * object per line on stdout. Logs and progress go to stderr.
 */
export class Output {
  constructor(
    readonly json: boolean,
    private readonly stdout: NodeJS.WriteStream = process.stdout,
    private readonly stderr: NodeJS.WriteStream = process.stderr,
  ) {}

  /** A result record: a JSON line with --json, else nothing (the caller prints a table or text). */
  record(value: Record<string, unknown>): void {
    if (this.json) this.stdout.write(`${JSON.stringify(value)}\n`);
  }

  /** Human text on stdout (skipped with --json). */
  text(line = ''): void {
    if (!this.json) this.stdout.write(`${line}\n`);
  }

  table(headers: string[], rows: (string | number)[][]): void {
    if (this.json) return;
    const cells = [headers, ...rows.map((r) => r.map(String))];
    const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
    const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
    this.text(line(headers));
    this.text(widths.map((w) => '-'.repeat(w)).join('  '));
    for (const r of cells.slice(1)) this.text(line(r));
  }

  /** Progress and log lines: stderr, always. */
  log(line: string): void {
    this.stderr.write(`${line}\n`);
  }
}

/** A mistake in how the command was called; printed as one line with exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export const percent = (x: number, digits = 1): string => `${(100 * x).toFixed(digits)}%`;
export const millions = (n: number): string =>
  n >= 1e9 ? `${(n / 1e9).toFixed(3)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n.toLocaleString('en');
