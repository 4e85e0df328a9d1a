import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, NatsServer, type NatsServerOptions, ServiceProcess } from '@fednano/service-kit';
import type { FederationRef } from '@fednano/wire';
import { issueLocalIdentities, type LocalIdentities } from './local-identities.js';

const entry = (service: string) =>
  fileURLToPath(new URL(`../../../services/${service}/bin/${service}.mjs`, import.meta.url));

export const SERVICE_ENTRIES = {
  llmHost: entry('llm-host'),
  aggregator: entry('aggregator'),
  clientAgent: entry('client-agent'),
};

export interface LocalClusterOptions extends FederationRef {
  modelPath: string;
  /** Logs go to <workDir>/logs/<service>.log. */
  workDir: string;
  nats?: NatsServerOptions;
  /** Extra llm-host flags, e.g. ['--max-delay-ms', '5']. */
  llmHostArgs?: string[];
  /** Aggregator ack wait (redelivery after a crash), ms. */
  ackWaitMs?: number;
  /** Extra environment of the aggregator's first start (e.g. FEDNANO_CRASH_AT for a fault test). */
  aggregatorEnv?: NodeJS.ProcessEnv;
  /** The initial adapter the aggregator writes as round 0. */
  initialAdapter?: { rank: number; alpha: number; seed: number };
  /** A held-out shard folder the aggregator scores each new global adapter on (its --evaluation-data). */
  evaluationData?: string;
  /**
   * Where each client-agent is told to find the llm-host (host:port) and NATS (URL); default: where they are. The
   * fault tests route clients through a misbehaving proxy here.
   */
  clientRoute?: (client: string, direct: { llmHost: string; nats: string }) => { llmHost: string; nats: string };
  /**
   * Run secured as in a cluster with the operator's identities: NATS requires the NKey users of the federation's
   * account (least-privilege permissions) and the llm-host requires client certificates of this federation.
   */
  security?: { clients: readonly string[] };
}

/**
 * A federation's server side on this machine: a private nats-server, the llm-host and the aggregator as child
 * processes on ephemeral ports, plus client-agents on demand. Services can be killed and restarted in place (same
 * ports, same store), which is what the fault tests do.
 */
export class LocalCluster {
  llmHost!: ServiceProcess;
  aggregator!: ServiceProcess;
  private llmPort = 0;
  private llmOpsPort = 0;
  private aggOpsPort = 0;

  private constructor(
    readonly o: LocalClusterOptions,
    readonly nats: NatsServer,
    /** With `security`: the issued identities (files under <workDir>/identities). */
    readonly identities?: LocalIdentities,
  ) {}

  static async start(o: LocalClusterOptions): Promise<LocalCluster> {
    const identities = o.security
      ? await issueLocalIdentities(o, o.security.clients, join(o.workDir, 'identities'))
      : undefined;
    const nats = await NatsServer.start({ ...o.nats, ...(identities ? { authConfig: identities.natsAccounts } : {}) });
    const c = new LocalCluster(o, nats, identities);
    try {
      c.llmPort = await freePort();
      c.llmOpsPort = await freePort();
      c.aggOpsPort = await freePort();
      await Promise.all([c.startLlmHost(), c.startAggregator(o.aggregatorEnv)]);
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  get llmHostAddress(): string {
    return `127.0.0.1:${this.llmPort}`;
  }

  get opsPorts(): { llmHost: number; aggregator: number } {
    return { llmHost: this.llmOpsPort, aggregator: this.aggOpsPort };
  }

  private log(name: string): string {
    return join(this.o.workDir, 'logs', `${name}.log`);
  }

  async startLlmHost(): Promise<void> {
    this.llmHost = ServiceProcess.start({
      name: 'llm-host',
      entry: SERVICE_ENTRIES.llmHost,
      args: [
        '--model',
        this.o.modelPath,
        '--host',
        '127.0.0.1',
        '--port',
        String(this.llmPort),
        '--ops-port',
        String(this.llmOpsPort),
        ...(this.identities
          ? [
              ...['--tls-cert', this.identities.llmHost.cert, '--tls-key', this.identities.llmHost.key],
              ...['--tls-client-ca', this.identities.ca, '--federation', `${this.o.namespace}/${this.o.federation}`],
            ]
          : []),
        ...(this.o.llmHostArgs ?? []),
      ],
      logFile: this.log('llm-host'),
    });
    await this.llmHost.waitReady(this.llmOpsPort);
  }

  /** What the aggregator and the client-agents are told first: where NATS is and which federation they serve. */
  private federationArgs(natsUrl = this.nats.url): string[] {
    return ['--nats', natsUrl, '--namespace', this.o.namespace, '--federation', this.o.federation];
  }

  async startAggregator(env?: NodeJS.ProcessEnv): Promise<void> {
    this.aggregator = ServiceProcess.start({
      name: 'aggregator',
      entry: SERVICE_ENTRIES.aggregator,
      env,
      args: [
        ...this.federationArgs(),
        '--ops-port',
        String(this.aggOpsPort),
        '--ack-wait-ms',
        String(this.o.ackWaitMs ?? 3000),
        ...(this.identities ? ['--nats-creds', this.identities.aggregator.nats] : []),
        ...(this.o.initialAdapter || this.o.evaluationData ? ['--model', this.o.modelPath] : []),
        ...(this.o.initialAdapter
          ? [
              '--adapter-rank',
              String(this.o.initialAdapter.rank),
              '--adapter-alpha',
              String(this.o.initialAdapter.alpha),
              '--seed',
              String(this.o.initialAdapter.seed),
            ]
          : []),
        ...(this.o.evaluationData ? ['--evaluation-data', this.o.evaluationData] : []),
      ],
      logFile: this.log('aggregator'),
    });
    await this.aggregator.waitReady(this.aggOpsPort);
  }

  /** One client's round as a process (it exits when done). */
  startClientAgent(round: number, client: string, dataDir: string, extraArgs: string[] = []): ServiceProcess {
    const direct = { llmHost: this.llmHostAddress, nats: this.nats.url };
    const route = this.o.clientRoute?.(client, direct) ?? direct;
    return ServiceProcess.start({
      name: `client-agent ${client}`,
      entry: SERVICE_ENTRIES.clientAgent,
      args: [
        ...this.federationArgs(route.nats),
        '--round',
        String(round),
        '--client',
        client,
        '--llm-host',
        route.llmHost,
        '--model',
        this.o.modelPath,
        '--data',
        dataDir,
        ...this.clientIdentityArgs(client),
        ...extraArgs,
      ],
      logFile: this.log(`client-agent-r${round}-${client}`),
    });
  }

  private clientIdentityArgs(client: string): string[] {
    if (!this.identities) return [];
    const id = this.identities.client(client);
    return [
      ...['--nats-creds', id.nats, '--tls-ca', this.identities.ca, '--tls-cert', id.cert, '--tls-key', id.key],
      ...['--tls-server-name', this.identities.serverName],
    ];
  }

  /** How `fednano run` itself connects: the operator's NATS user, and an evaluator certificate for the llm-host. */
  get controlCredentials(): {
    natsCreds?: string;
    tls?: { ca: string; cert: string; key: string; serverName: string };
  } {
    const id = this.identities;
    if (!id) return {};
    return {
      natsCreds: id.operator.nats,
      tls: { ca: id.ca, cert: id.operator.cert, key: id.operator.key, serverName: id.serverName },
    };
  }

  async stop(): Promise<void> {
    await Promise.all([this.llmHost?.stop(), this.aggregator?.stop()]);
    await this.nats.stop();
  }
}
