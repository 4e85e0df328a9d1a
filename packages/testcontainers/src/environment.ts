import { createWriteStream, type WriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  type AdapterWeights,
  adapterShapes,
  type Dims,
  type EvaluationResult,
  type Example,
  evaluateAdapters,
} from '@fednano/core';
import { writeShard } from '@fednano/data';
import { issueLocalIdentities, type LocalIdentities } from '@fednano/local-cluster';
import { imageTokenCount, loadModelFolder, openModel } from '@fednano/model';
import {
  clientSeed,
  clientsPerRound,
  type FederationPlan,
  loadConfig,
  NanoEdgeCache,
  perTypeAccuracy,
  planFederation,
  prepareExamples,
  type SimulationConfig,
  selectClients,
} from '@fednano/simulation';
import {
  connectNats,
  ensureStorage,
  type FederationRef,
  GrpcLlmHost,
  getAdapter,
  isFinished,
  openRound,
  type RoundDocument,
  type RoundEvaluation,
  type RoundSpec,
  waitForRound,
} from '@fednano/wire';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  GenericContainer,
  getContainerRuntimeClient,
  Network,
  type StartedNetwork,
  type StartedTestContainer,
  Wait,
} from 'testcontainers';
import { prepareReaper, type ReaperMode, type ReaperOptions } from './reaper.js';
import { PACKAGE_VERSION } from './ryuk-env.js';

/** The project images (docker/*.Dockerfile) the environment runs. */
export interface FedNanoImages {
  nats: string;
  llmHost: string;
  aggregator: string;
  clientAgent: string;
}

/** `fednano/<name>:<version>`: what docker/*.Dockerfile are built as (the chart's image defaults). */
export const DEFAULT_IMAGES: FedNanoImages = {
  nats: `fednano/nats:${PACKAGE_VERSION}`,
  llmHost: `fednano/llm-host:${PACKAGE_VERSION}`,
  aggregator: `fednano/aggregator:${PACKAGE_VERSION}`,
  clientAgent: `fednano/client-agent:${PACKAGE_VERSION}`,
};

export interface FedNanoEnvironmentOptions {
  /**
   * The federation, in the schema of `fednano simulate` / `fednano run` (the Federation CRD's fields plus a
   * `simulation` section that describes the clients and their data): a parsed config or the path of its YAML.
   */
  config: SimulationConfig | string;
  /** Kubernetes-style namespace of the federation (subjects, KV keys, identities); default `default`. */
  namespace?: string;
  images?: Partial<FedNanoImages>;
  /**
   * Model folder on this machine (default: spec.model.path, from the working directory). It is mounted read-only at
   * /model into every FedNano container and read here to plan the data and prepare the evaluation questions.
   */
  modelPath?: string;
  /** Client shards (`clients/<id>`) and container logs (`logs/`); default a temporary folder. */
  workDir?: string;
  /** Keep workDir after stop() (default: kept only when it was given). */
  keepWorkDir?: boolean;
  /** Bring your own data: client id → folder holding that client's shard.json (others come from the config's plan). */
  clientData?: Record<string, string>;
  /**
   * Without NATS NKey users and mutual TLS to the llm-host. Default: secured, as `fednano run` and the operator run
   * a federation (one NKey user per party with least-privilege permissions, a CA per federation, client certificates).
   */
  insecure?: boolean;
  /** Extra llm-host flags, e.g. ['--max-delay-ms', '5']. */
  llmHostArgs?: string[];
  /** Aggregator ack wait (redelivery after a crash), ms; default 3000. */
  ackWaitMs?: number;
  /** Longest wait for one service to be ready, ms (default 120000). */
  startupTimeoutMs?: number;
  reaper?: ReaperOptions;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface RoundOptions {
  /** Clients that train this round (default: the config's selection for this round, as `simulate` and `run`). */
  clients?: string[];
  /** Fewest accepted updates for success at the deadline (default spec.participation.minClients, else all). */
  minClients?: number;
  /** The round's deadline from its opening, s (default 600). */
  deadlineSeconds?: number;
  /** Extra client-agent flags, e.g. ['--label-private']. */
  clientAgentArgs?: string[];
}

export interface AgentOutcome {
  client: string;
  exitCode: number;
  /** Container start to exit, s. */
  seconds: number;
  logFile: string;
}

export interface Evaluation {
  /** Closed-set accuracy on the config's held-out test questions, in [0, 1]. */
  accuracy: number;
  /** Mean NLL of the correct answers. */
  loss: number;
  perType: Record<string, number>;
  examples: number;
  seconds: number;
}

export interface RoundResult {
  round: number;
  /** The aggregated global adapter in the Object Store (the next round's base). */
  adapter: { object: string; sha256: string };
  /**
   * The aggregator's score of that adapter on the config's held-out questions (its `--evaluation-data`, as a
   * Federation's spec.evaluation under the operator), from the round record.
   */
  evaluation?: RoundEvaluation;
  /** Why the aggregator recorded no evaluation (its held-out set missing or unreadable); the round still counts. */
  evaluationError?: string;
  accepted: string[];
  rejected: { client: string; reason: string; message: string }[];
  /** Mean local training loss of the accepted updates. */
  trainLoss: number;
  /** Mean encoded update size, bytes. */
  updateBytes: number;
  /** Round opened → aggregated, s (client-agent containers start, train, publish; the aggregator merges). */
  seconds: number;
  agents: AgentOutcome[];
  document: RoundDocument;
}

export class RoundFailedError extends Error {
  override name = 'RoundFailedError';
  constructor(
    message: string,
    readonly document: RoundDocument | undefined,
    readonly agents: AgentOutcome[],
  ) {
    super(message);
  }
}

const NATS_CLIENT_PORT = 4222;
const NATS_MONITOR_PORT = 8222;
const LLM_GRPC_PORT = 50051;
const OPS_PORT = 9090;
/** Where the identities are copied into a container. */
const ID_DIR = '/etc/fednano/identity';

interface Planned {
  config: SimulationConfig;
  folder: Awaited<ReturnType<typeof loadModelFolder>>;
  plan: FederationPlan;
  testExamples: Example[];
  dims: Dims;
}

/**
 * One FedNano federation's server side in containers: NATS with JetStream, the llm-host and the aggregator from the
 * project images on a private Docker network, plus one client-agent container per client per round, with its data
 * shard mounted. Rounds are opened in the NATS KV bucket and decided by the aggregator, as under the operator.
 *
 *   const fed = await FedNanoEnvironment.start({ config: 'examples/quickstart.yaml' });
 *   const r = await fed.runRound();          // r.adapter.sha256, r.evaluation.accuracy, r.seconds
 *   await fed.stop();
 */
export class FedNanoEnvironment {
  /** NATS from this machine (mapped port). */
  natsUrl = '';
  /** The llm-host's gRPC address from this machine (mapped port). */
  llmHostAddress = '';
  /** /healthz, /readyz, /metrics of the llm-host and the aggregator from this machine. */
  opsUrls = { llmHost: '', aggregator: '', natsMonitor: '' };
  readonly containers: {
    nats?: StartedTestContainer;
    llmHost?: StartedTestContainer;
    aggregator?: StartedTestContainer;
  } = {};
  network?: StartedNetwork;
  reaper: ReaperMode = 'disabled';
  /** With security: the issued identities (files under workDir/identities). */
  identities?: LocalIdentities;
  /** The last aggregated round (0: the initial adapter the aggregator wrote). */
  round = 0;
  adapter: { object: string; sha256: string } = { object: '', sha256: '' };

  private nc?: NatsConnection;
  private evaluator?: GrpcLlmHost;
  private readonly logs: WriteStream[] = [];
  private readonly agents = new Set<StartedTestContainer>();
  private readonly images: FedNanoImages;
  private readonly shards = new Map<string, string>();

  private constructor(
    readonly options: FedNanoEnvironmentOptions,
    readonly federation: FederationRef,
    readonly workDir: string,
    readonly modelPath: string,
    private readonly p: Planned,
  ) {
    this.images = { ...DEFAULT_IMAGES, ...options.images };
  }

  /** The held-out shard (the config's test questions) mounted read-only into the aggregator at /evaluation. */
  get heldOutDir(): string {
    return join(this.workDir, 'evaluation');
  }

  /** The federation config the environment runs. */
  get config(): SimulationConfig {
    return this.p.config;
  }

  /** The roster: every client of the config, with the folder of its shard on this machine. */
  get clients(): { id: string; data: string }[] {
    return [...this.shards].map(([id, data]) => ({ id, data }));
  }

  /**
   * Plans the data (client shards written under workDir), issues identities (secured mode), and starts NATS, the
   * llm-host and the aggregator, each waited for on its /healthz or /readyz; resolves once the aggregator has
   * written round 0 (the initial adapter).
   */
  static async start(o: FedNanoEnvironmentOptions): Promise<FedNanoEnvironment> {
    const log = o.log ?? (() => {});
    const config = typeof o.config === 'string' ? await loadConfig(o.config) : o.config;
    if (config.spec.simulation.method !== 'federated')
      throw new Error(
        `FedNanoEnvironment runs federated training only (spec.simulation.method is '${config.spec.simulation.method}')`,
      );
    const f: FederationRef = { namespace: o.namespace ?? 'default', federation: config.metadata.name };
    const modelPath = resolve(o.modelPath ?? config.spec.model.path);
    const folder = await loadModelFolder(modelPath);
    const cfg = folder.manifest.config;
    const plan = await planFederation(config, folder.manifest.recipe.seed);
    const model = await openModel(folder);
    const testExamples = await prepareExamples(new NanoEdgeCache(model), plan.sets, plan.test).finally(() =>
      model.close(),
    );
    const dims: Dims = { imageTokens: imageTokenCount(cfg), contextLength: cfg.contextLength, dModel: cfg.dModel };
    const workDir = o.workDir ?? (await mkdtemp(join(tmpdir(), `fednano-tc-${f.federation}-`)));
    const env = new FedNanoEnvironment(o, f, workDir, modelPath, { config, folder, plan, testExamples, dims });
    try {
      await mkdir(join(workDir, 'logs'), { recursive: true });
      for (const c of plan.clients) {
        const own = o.clientData?.[c.id];
        const dir = own ? resolve(own) : join(workDir, 'clients', c.id);
        if (!own) {
          await writeShard(dir, plan.sets, c.questions);
          await worldReadable(dir); // the containers run as uid 65532
        }
        env.shards.set(c.id, dir);
      }
      // The test split is the federation's held-out set, which the aggregator scores each new global adapter on.
      await writeShard(env.heldOutDir, plan.sets, plan.test);
      await worldReadable(env.heldOutDir);
      log(`${plan.clients.length} clients, ${testExamples.length} test questions; starting NATS, llm-host, aggregator`);
      await env.startServices();
    } catch (e) {
      await env.stop();
      throw e;
    }
    return env;
  }

  private logFile(name: string): string {
    return join(this.workDir, 'logs', `${name}.log`);
  }

  /** testcontainers' log consumer writing a container's stdout and stderr to logs/<name>.log. */
  private logTo(name: string) {
    const file = createWriteStream(this.logFile(name), { flags: 'a' });
    this.logs.push(file);
    return (stream: NodeJS.ReadableStream) => {
      stream.pipe(file, { end: false });
    };
  }

  private labels(role: string, extra: Record<string, string> = {}): Record<string, string> {
    return {
      'io.fednano.namespace': this.federation.namespace,
      'io.fednano.federation': this.federation.federation,
      'io.fednano.role': role,
      ...extra,
    };
  }

  private async identity(path: string, target: string) {
    return { content: await readFile(path), target: `${ID_DIR}/${target}`, mode: 0o444 };
  }

  /** A service's start, whose failure (e.g. its wait strategy timing out) carries the end of its log. */
  private async started(name: string, start: Promise<StartedTestContainer>): Promise<StartedTestContainer> {
    try {
      return await start;
    } catch (e) {
      await new Promise((r) => setTimeout(r, 200)); // the log consumer's last lines
      throw new Error(
        `${name} (${name === 'nats' ? this.images.nats : name === 'llm-host' ? this.images.llmHost : this.images.aggregator}) did not start: ${(e as Error).message}\nlast lines of ${this.logFile(name)}:\n${await this.logTail(name, 20)}`,
      );
    }
  }

  private async startServices(): Promise<void> {
    const o = this.options;
    const log = o.log ?? (() => {});
    const timeout = o.startupTimeoutMs ?? 120_000;
    this.reaper = await prepareReaper({ log, ...o.reaper });
    const client = await getContainerRuntimeClient();
    const t0 = Date.now();
    this.network = await new Network().start();
    if (!o.insecure)
      this.identities = await issueLocalIdentities(
        this.federation,
        [...this.shards.keys()],
        join(this.workDir, 'identities'),
      );
    const ids = this.identities;
    const f = this.federation;
    const fedArgs = (natsUrl: string) => ['--nats', natsUrl, '--namespace', f.namespace, '--federation', f.federation];
    const modelMount = [{ source: this.modelPath, target: '/model', mode: 'ro' as const }];

    // NATS with JetStream; secured: the federation's account with its NKey users (the operator's accounts Secret).
    let nats = new GenericContainer(this.images.nats)
      .withDroppedCapabilities('ALL')
      .withSecurityOpt('no-new-privileges')
      .withNetwork(this.network)
      .withNetworkAliases('nats')
      .withLabels(this.labels('nats'))
      .withExposedPorts(NATS_CLIENT_PORT, NATS_MONITOR_PORT)
      .withLogConsumer(this.logTo('nats'))
      .withWaitStrategy(Wait.forHttp('/healthz?js-enabled-only=true', NATS_MONITOR_PORT))
      .withStartupTimeout(timeout);
    if (ids) {
      const conf = [
        `listen: "0.0.0.0:${NATS_CLIENT_PORT}"`,
        `http: "0.0.0.0:${NATS_MONITOR_PORT}"`,
        'jetstream { store_dir: "/data" }',
        ids.natsAccounts,
      ].join('\n');
      nats = nats
        .withCopyContentToContainer([{ content: conf, target: '/etc/nats/nats.conf', mode: 0o444 }])
        .withCommand(['-c', '/etc/nats/nats.conf']);
    }
    const natsStarted = this.started('nats', nats.start());

    // The llm-host: needs nothing but the model; starts beside NATS.
    let llm = new GenericContainer(this.images.llmHost)
      .withDroppedCapabilities('ALL')
      .withSecurityOpt('no-new-privileges')
      .withNetwork(this.network)
      .withNetworkAliases('llm-host')
      .withLabels(this.labels('llm-host'))
      .withExposedPorts(LLM_GRPC_PORT, OPS_PORT)
      .withBindMounts(modelMount)
      .withLogConsumer(this.logTo('llm-host'))
      .withWaitStrategy(Wait.forHttp('/readyz', OPS_PORT))
      .withStartupTimeout(timeout);
    const llmArgs = ['--model', '/model', '--port', String(LLM_GRPC_PORT), '--ops-port', String(OPS_PORT)];
    if (ids) {
      llm = llm.withCopyContentToContainer([
        await this.identity(ids.llmHost.cert, 'tls.crt'),
        await this.identity(ids.llmHost.key, 'tls.key'),
        await this.identity(ids.ca, 'ca.crt'),
      ]);
      llmArgs.push(...['--tls-cert', `${ID_DIR}/tls.crt`, '--tls-key', `${ID_DIR}/tls.key`]);
      llmArgs.push(...['--tls-client-ca', `${ID_DIR}/ca.crt`, '--federation', `${f.namespace}/${f.federation}`]);
    }
    const llmStarted = this.started('llm-host', llm.withCommand([...llmArgs, ...(o.llmHostArgs ?? [])]).start());

    const [natsC, llmC] = (await settleAll([natsStarted, llmStarted], (c) => c.stop())) as [
      StartedTestContainer,
      StartedTestContainer,
    ];
    this.containers.nats = natsC;
    this.containers.llmHost = llmC;
    this.natsUrl = `nats://${natsC.getHost()}:${natsC.getMappedPort(NATS_CLIENT_PORT)}`;
    this.opsUrls.natsMonitor = `http://${natsC.getHost()}:${natsC.getMappedPort(NATS_MONITOR_PORT)}`;
    this.llmHostAddress = `${llmC.getHost()}:${llmC.getMappedPort(LLM_GRPC_PORT)}`;
    this.opsUrls.llmHost = `http://${llmC.getHost()}:${llmC.getMappedPort(OPS_PORT)}`;

    // The aggregator, which writes round 0 (the initial adapter) to the Object Store.
    const s = this.p.config.spec;
    let agg = new GenericContainer(this.images.aggregator)
      .withDroppedCapabilities('ALL')
      .withSecurityOpt('no-new-privileges')
      .withNetwork(this.network)
      .withNetworkAliases('aggregator')
      .withLabels(this.labels('aggregator'))
      .withExposedPorts(OPS_PORT)
      .withBindMounts([...modelMount, { source: this.heldOutDir, target: '/evaluation', mode: 'ro' as const }])
      .withLogConsumer(this.logTo('aggregator'))
      .withWaitStrategy(Wait.forHttp('/readyz', OPS_PORT))
      .withStartupTimeout(timeout);
    const aggArgs = [
      ...fedArgs(`nats://nats:${NATS_CLIENT_PORT}`),
      ...['--ops-port', String(OPS_PORT), '--ack-wait-ms', String(o.ackWaitMs ?? 3000)],
      ...['--model', '/model', '--adapter-rank', String(s.adapter.rank), '--adapter-alpha', String(s.adapter.alpha)],
      ...['--seed', String(s.simulation.seed), '--evaluation-data', '/evaluation'],
    ];
    if (ids) {
      agg = agg.withCopyContentToContainer([await this.identity(ids.aggregator.nats, 'nats.nk')]);
      aggArgs.push('--nats-creds', `${ID_DIR}/nats.nk`);
    }
    this.containers.aggregator = await this.started('aggregator', agg.withCommand(aggArgs).start());
    this.opsUrls.aggregator = `http://${this.containers.aggregator.getHost()}:${this.containers.aggregator.getMappedPort(OPS_PORT)}`;

    const control = this.controlCredentials;
    this.nc = await connectNats({
      servers: this.natsUrl,
      name: 'fednano-testcontainers',
      credsFile: control.natsCreds,
    });
    const { kv } = await ensureStorage(this.nc);
    const zero = await waitForRound(kv, f, 0, () => true, { timeoutMs: timeout });
    this.adapter = zero.status.result!;
    this.evaluator = new GrpcLlmHost(this.llmHostAddress, { clientId: 'evaluator', tls: control.tls });
    log(
      `services ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (engine API ${client.info.containerRuntime.serverVersion}, reaper ${this.reaper}, ${ids ? 'secured: NKey users + mTLS' : 'insecure'})`,
    );
  }

  /**
   * How this process connects as the operator would: its NATS user (creds file) and an evaluator certificate for
   * the llm-host. Empty in insecure mode.
   */
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

  /** A NATS connection from this machine, as the operator's user in secured mode (close it yourself). */
  connectNats(name = 'fednano-testcontainers-user'): Promise<NatsConnection> {
    return connectNats({ servers: this.natsUrl, name, credsFile: this.controlCredentials.natsCreds });
  }

  /**
   * One client's round as a container (it exits when its update is published). The shard folder is mounted
   * read-only at /data; in secured mode the client's own NKey seed, certificate and key are copied in.
   */
  async startClientAgent(
    round: number,
    client: string,
    o: { data?: string; args?: string[] } = {},
  ): Promise<{ container: StartedTestContainer; exited: Promise<AgentOutcome> }> {
    const data = o.data ?? this.shards.get(client);
    if (!data)
      throw new Error(`client '${client}' has no data: it is not in the config's roster and no data was given`);
    const ids = this.identities;
    const name = `client-agent-r${round}-${client}`;
    const args = [
      ...['--nats', `nats://nats:${NATS_CLIENT_PORT}`, '--namespace', this.federation.namespace],
      ...['--federation', this.federation.federation, '--round', String(round), '--client', client],
      ...['--llm-host', `llm-host:${LLM_GRPC_PORT}`, '--model', '/model', '--data', '/data'],
    ];
    let c = new GenericContainer(this.images.clientAgent)
      .withDroppedCapabilities('ALL')
      .withSecurityOpt('no-new-privileges')
      .withNetwork(this.network!)
      .withLabels(this.labels('client-agent', { 'io.fednano.client': client, 'io.fednano.round': String(round) }))
      .withBindMounts([
        { source: this.modelPath, target: '/model', mode: 'ro' },
        { source: resolve(data), target: '/data', mode: 'ro' },
      ])
      .withLogConsumer(this.logTo(name));
    if (ids) {
      const id = ids.client(client);
      c = c.withCopyContentToContainer([
        await this.identity(id.nats, 'nats.nk'),
        await this.identity(id.cert, 'tls.crt'),
        await this.identity(id.key, 'tls.key'),
        await this.identity(ids.ca, 'ca.crt'),
      ]);
      args.push(...['--nats-creds', `${ID_DIR}/nats.nk`, '--tls-ca', `${ID_DIR}/ca.crt`]);
      args.push(...['--tls-cert', `${ID_DIR}/tls.crt`, '--tls-key', `${ID_DIR}/tls.key`]);
      args.push('--tls-server-name', ids.serverName);
    }
    const t0 = Date.now();
    const container = await c.withCommand([...args, ...(o.args ?? [])]).start();
    this.agents.add(container);
    const runtime = await getContainerRuntimeClient();
    const exited = (async (): Promise<AgentOutcome> => {
      const { StatusCode } = (await runtime.container.getById(container.getId()).wait()) as { StatusCode: number };
      return { client, exitCode: StatusCode, seconds: (Date.now() - t0) / 1000, logFile: this.logFile(name) };
    })();
    return { container, exited };
  }

  /**
   * Runs the next round: opens it (participants, seeds, base adapter and settings from the config, as `fednano run`
   * does), starts a client-agent container per participant and waits for the aggregator to aggregate and to score
   * the new global adapter on the held-out questions (in its container, as under the operator). Throws RoundFailedError when the
   * round fails (with the agents' exit codes and log files).
   */
  async runRound(o: RoundOptions = {}): Promise<RoundResult> {
    const { config, plan, dims } = this.p;
    const s = config.spec;
    const sim = s.simulation;
    const round = this.round + 1;
    const selected = o.clients
      ? o.clients.map((id) => ({ id }))
      : selectClients(plan.clients, sim.seed, round, clientsPerRound(config));
    const index = (id: string) => {
      const i = plan.clients.findIndex((c) => c.id === id);
      return i >= 0 ? i : plan.clients.length + selected.findIndex((c) => c.id === id);
    };
    const spec: RoundSpec = {
      ...this.federation,
      round,
      participants: selected.map((c) => c.id),
      minClients: Math.min(selected.length, o.minClients ?? s.participation.minClients ?? selected.length),
      deadline: new Date(Date.now() + 1000 * (o.deadlineSeconds ?? 600)).toISOString(),
      baseAdapter: this.adapter,
      adapter: s.adapter,
      dModel: dims.dModel,
      strategy: { ...s.strategy } as RoundSpec['strategy'],
      training: { ...s.training, steps: s.training.localSteps, fisherSamples: s.training.fisherSamples ?? 64 },
      seeds: Object.fromEntries(selected.map((c) => [c.id, clientSeed(sim.seed, round, index(c.id))])),
      updateEncoding: s.updateEncoding ?? 'float32',
    };
    const missing = spec.participants.filter((id) => !this.shards.has(id));
    if (missing.length > 0)
      throw new Error(
        `no data for ${missing.join(', ')}: not in the config's roster (clients: ${[...this.shards.keys()].join(', ')})`,
      );
    const { kv } = await ensureStorage(this.nc!);
    const t0 = Date.now();
    await openRound(kv, spec);
    const started = await Promise.all(
      selected.map((c) => this.startClientAgent(round, c.id, { args: o.clientAgentArgs })),
    );
    const outcomes: AgentOutcome[] = [];
    const allExited = Promise.all(
      started.map((a) =>
        a.exited.then((r) => {
          outcomes.push(r);
          return r;
        }),
      ),
    );
    // Every agent failing decides the round as surely as the aggregator: do not wait for the deadline then.
    const allFailed = allExited.then((rs) => (rs.every((r) => r.exitCode !== 0) ? rs : new Promise<never>(() => {})));
    const timeoutMs = Math.max(1000, Date.parse(spec.deadline) - Date.now()) + 60_000;
    let doc: RoundDocument | undefined;
    try {
      const decided = await Promise.race([
        waitForRound(kv, this.federation, round, (d) => isFinished(d.status.state), { timeoutMs }),
        allFailed,
      ]);
      if (Array.isArray(decided))
        throw new RoundFailedError(
          `round ${round}: every client-agent failed (${decided.map((r) => `${r.client}: exit ${r.exitCode}, log ${r.logFile}`).join('; ')})`,
          undefined,
          decided,
        );
      doc = decided;
      const seconds = (Date.now() - t0) / 1000;
      // Agents exit on their own once published; stragglers are stopped below.
      await Promise.race([allExited, sleep(10_000)]);
      if (doc.status.state !== 'Aggregated')
        throw new RoundFailedError(`round ${round} ${doc.status.state}: ${doc.status.message ?? ''}`, doc, outcomes);
      this.round = round;
      this.adapter = doc.status.result!;
      return {
        round,
        adapter: this.adapter,
        evaluation: doc.status.evaluation,
        evaluationError: doc.status.evaluationError,
        accepted: doc.status.accepted.map((a) => a.client),
        rejected: doc.status.rejected.map((r) => ({ client: r.client, reason: r.reason, message: r.message })),
        trainLoss: doc.status.metrics?.meanTrainLoss ?? Number.NaN,
        updateBytes: doc.status.metrics?.meanUpdateBytes ?? 0,
        seconds,
        agents: [...outcomes].sort((a, b) => a.client.localeCompare(b.client)),
        document: doc,
      };
    } finally {
      await Promise.all(
        started.map(async (a) => {
          await a.container.stop({ timeout: 2000 }).catch(() => {});
          this.agents.delete(a.container);
        }),
      );
    }
  }

  /**
   * Scores a global adapter (default: the current one) on the config's held-out questions in this process, through
   * the llm-host container: the initial adapter, or a check of the aggregator's own score (the same numbers).
   */
  async evaluate(adapter: { object: string; sha256: string } = this.adapter): Promise<Evaluation> {
    const t0 = Date.now();
    const { config, dims, testExamples } = this.p;
    const { objects } = await ensureStorage(this.nc!);
    const weights: AdapterWeights = await getAdapter(
      objects,
      adapter.object,
      adapterShapes(dims.dModel, config.spec.adapter.rank),
      adapter.sha256,
    );
    const e: EvaluationResult = await evaluateAdapters(
      this.evaluator!,
      dims,
      config.spec.adapter,
      weights,
      testExamples,
    );
    return {
      accuracy: e.accuracy,
      loss: e.loss,
      perType: perTypeAccuracy(e),
      examples: e.examples,
      seconds: (Date.now() - t0) / 1000,
    };
  }

  /** The last lines of a container's log (logs/<name>.log): 'nats', 'llm-host', 'aggregator', 'client-agent-r1-c0'. */
  async logTail(name: string, lines = 30): Promise<string> {
    const text = await readFile(this.logFile(name), 'utf8').catch(() => '');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** Stops and removes every container and the network; removes workDir unless it was given or keepWorkDir. */
  async stop(): Promise<void> {
    await this.evaluator?.close().catch(() => {});
    await this.nc?.drain().catch(() => {});
    const all = [...this.agents, this.containers.aggregator, this.containers.llmHost, this.containers.nats];
    await Promise.all(all.map((c) => c?.stop({ timeout: 5000 }).catch(() => {})));
    await this.network?.stop().catch(() => {});
    await Promise.all(this.logs.map((l) => new Promise<void>((r) => l.end(() => r()))));
    if (!(this.options.keepWorkDir ?? this.options.workDir !== undefined))
      await rm(this.workDir, { recursive: true, force: true });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Like Promise.all, but when one fails the others that started are cleaned up before the error is thrown. */
async function settleAll<T>(ps: Promise<T>[], cleanup: (v: T) => Promise<unknown>): Promise<T[]> {
  const rs = await Promise.allSettled(ps);
  const failed = rs.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(rs.map((r) => (r.status === 'fulfilled' ? cleanup(r.value).catch(() => {}) : undefined)));
    throw failed.reason;
  }
  return rs.map((r) => (r as PromiseFulfilledResult<T>).value);
}

/** Makes a shard folder readable by the containers' uid (65532): folders 0755, files 0644. */
async function worldReadable(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await worldReadable(p);
    else await chmod(p, 0o644);
  }
}
