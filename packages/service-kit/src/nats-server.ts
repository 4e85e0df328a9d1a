import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort } from './free-port.js';

export class NatsServerNotFound extends Error {
  override name = 'NatsServerNotFound';
  constructor() {
    super(
      'nats-server was not found on PATH (nor in /usr/sbin); install it with `apt-get install -y nats-server` ' +
        '(Debian package nats-server) or put the binary on PATH',
    );
  }
}

/** The nats-server binary: FEDNANO_NATS_SERVER, else PATH, else the sbin folders Debian installs it into. */
export function findNatsServer(
  env: NodeJS.ProcessEnv = process.env,
  systemDirs: readonly string[] = ['/usr/sbin', '/usr/local/sbin'],
): string {
  if (env.FEDNANO_NATS_SERVER) {
    if (existsSync(env.FEDNANO_NATS_SERVER)) return env.FEDNANO_NATS_SERVER;
    throw new Error(`FEDNANO_NATS_SERVER is '${env.FEDNANO_NATS_SERVER}', which does not exist`);
  }
  const dirs = [...(env.PATH ?? '').split(delimiter), ...systemDirs];
  for (const d of dirs) if (d && existsSync(join(d, 'nats-server'))) return join(d, 'nats-server');
  throw new NatsServerNotFound();
}

export interface NatsServerOptions {
  /** JetStream file store; a fresh temp dir (removed by `stop`) when omitted. */
  storeDir?: string;
  /** Largest message the server accepts, bytes (nats-server's default is 1 MiB). */
  maxPayload?: number;
  port?: number;
  /**
   * Extra top-level config text, e.g. the `accounts` block of per-federation NKey users (wire's natsAccountsConfig).
   * Written to `auth.conf` beside the main config and included from it, so `reloadAuth` can replace it.
   */
  authConfig?: string;
}

/**
 * A private nats-server with JetStream on an ephemeral port, for `fednano run` and the tests. `kill()` and `start()`
 * again on the same port and store simulate a server crash and restart.
 */
const AUTH_FILE = 'auth.conf';

export class NatsServer {
  private child?: ChildProcess;
  private exited?: Promise<void>;
  private log = '';
  private reloads = 0;

  private constructor(
    readonly port: number,
    readonly storeDir: string,
    private readonly ownsStore: boolean,
    private readonly configFile: string,
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  static async start(o: NatsServerOptions = {}): Promise<NatsServer> {
    const binary = findNatsServer();
    const storeDir = o.storeDir ?? (await mkdtemp(join(tmpdir(), 'fednano-nats-')));
    const port = o.port ?? (await freePort());
    // A config file, because max_payload has no command-line flag in nats-server 2.9.
    const configFile = join(storeDir, 'nats-server.conf');
    const lines = [`listen: "127.0.0.1:${port}"`, `jetstream { store_dir: "${storeDir}" }`];
    if (o.maxPayload) lines.push(`max_payload: ${o.maxPayload}`);
    if (o.authConfig !== undefined) {
      await writeFile(join(storeDir, AUTH_FILE), o.authConfig);
      lines.push(`include ./${AUTH_FILE}`);
    }
    await writeFile(configFile, `${lines.join('\n')}\n`);
    const s = new NatsServer(port, storeDir, o.storeDir === undefined, configFile);
    await s.launch(binary);
    return s;
  }

  private async launch(binary = findNatsServer()): Promise<void> {
    this.log = '';
    const child = spawn(binary, ['-c', this.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const keep = (b: Buffer) => {
      const text = b.toString();
      if (/Reloaded server configuration/.test(text)) this.reloads++;
      this.log = (this.log + text).slice(-8000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 10_000;
    while (!(await canConnect(this.port))) {
      if (child.exitCode !== null) throw new Error(`nats-server exited (${child.exitCode}): ${this.log.trim()}`);
      if (Date.now() > deadline) throw new Error(`nats-server did not listen on ${this.port} in 10 s: ${this.log}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /**
   * Replaces the included auth config and has the server reload it (SIGHUP), as the NATS chart's config reloader
   * does when the operator updates its Secret. Resolves once the server logged the reload.
   */
  async reloadAuth(authConfig: string): Promise<void> {
    await writeFile(join(this.storeDir, AUTH_FILE), authConfig);
    const before = this.reloads;
    this.child?.kill('SIGHUP');
    const deadline = Date.now() + 10_000;
    while (this.reloads === before) {
      if (Date.now() > deadline) throw new Error(`nats-server did not reload its config in 10 s: ${this.log}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Starts the server again (same port and store) after `kill()` or `stop({ keepStore: true })`. */
  async restart(): Promise<void> {
    await this.launch();
  }

  /** SIGKILL: the crash case. */
  async kill(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  async stop(o: { keepStore?: boolean } = {}): Promise<void> {
    if (this.child && this.child.exitCode === null) {
      this.child.kill('SIGTERM');
      await this.exited;
    }
    if (this.ownsStore && !o.keepStore) await rm(this.storeDir, { recursive: true, force: true });
  }

  get output(): string {
    return this.log;
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
