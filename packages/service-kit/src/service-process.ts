import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { get } from 'node:http';

export interface ServiceProcessOptions {
  /** For messages: 'llm-host', 'aggregator', 'client-agent client-3'. */
  name: string;
  /** A service's bin script (e.g. services/llm-host/bin/llm-host.mjs). */
  entry: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Append the process's stdout and stderr (pino JSON) to this file; otherwise keep the last 16 KB in memory. */
  logFile?: string;
}

/**
 * A FedNano service run as a child process, as `fednano run` and the end-to-end tests run them: start, wait until
 * `/readyz` answers, signal, and learn how it exited.
 */
export class ServiceProcess {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private tail = '';
  private readonly logStream?: WriteStream;

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
    logFile?: string,
  ) {
    if (logFile) this.logStream = createWriteStream(logFile, { flags: 'a' });
    const keep = (b: Buffer) => {
      this.tail = (this.tail + b.toString()).slice(-16_384);
      this.logStream?.write(b);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.logStream?.end();
        resolve({ code, signal });
      }),
    );
  }

  static start(o: ServiceProcessOptions): ServiceProcess {
    const child = spawn(process.execPath, [o.entry, ...(o.args ?? [])], {
      env: { ...process.env, ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new ServiceProcess(o.name, child, o.logFile);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last lines the process wrote (for error messages). */
  get output(): string {
    return this.tail;
  }

  /** The last log line with level >= error, as a one-line reason. */
  lastError(): string | undefined {
    const lines = this.tail.trim().split('\n').reverse();
    for (const line of lines) {
      try {
        const j = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string } };
        if ((j.level ?? 0) >= 50) return j.err?.message ? `${j.msg}: ${j.err.message}` : j.msg;
      } catch {
        if (line.trim()) return line.trim();
      }
    }
    return undefined;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Polls `http://127.0.0.1:<port>/readyz` until 200; fails early if the process exits. */
  async waitReady(opsPort: number, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) {
        const { code, signal } = await this.exited;
        throw new Error(
          `${this.name} exited (${signal ?? code}) before it was ready: ${this.lastError() ?? this.tail.slice(-500)}`,
        );
      }
      if ((await httpStatus(`http://127.0.0.1:${opsPort}/readyz`)) === 200) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${this.name} was not ready within ${timeoutMs} ms: ${this.tail.slice(-500)}`);
  }
}

export function httpStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = get(url, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.setTimeout(2000, () => req.destroy());
  });
}

export function httpText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}
