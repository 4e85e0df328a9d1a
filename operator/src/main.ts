import { randomUUID } from 'node:crypto';
import { createLogger, type FlagSpecs, onShutdown, serviceFlags, startOpsServer } from '@fednano/service-kit';
import { connectNats, type FederationRef, federationAccount } from '@fednano/wire';
import { KubeConfig } from '@kubernetes/client-node';
import { operatorNatsSeed, type SecuritySettings } from './identities.js';
import type { Kube } from './kube.js';
import { Operator } from './operator.js';
import { AccountRoundStores, NatsAccountPending, NatsRoundStore, type WatchedRoundStore } from './round-store.js';

export const OPERATOR_FLAGS = {
  kubeconfig: {
    type: 'string',
    description: 'kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then the in-cluster service account)',
  },
  nats: { type: 'string', description: 'NATS server URL(s) with JetStream', default: 'nats://nats:4222' },
  'nats-creds': { type: 'string', description: 'NATS credentials file (without --nats-accounts-secret)' },
  'nats-accounts-secret': {
    type: 'string',
    description:
      'namespace/name of a Secret to write the NATS accounts config to (key accounts.conf): turns on per-federation NATS accounts and per-party NKey users issued by the operator',
  },
  mtls: {
    type: 'boolean',
    description: 'Issue a CA per federation and certificates, and run client-agent -> llm-host traffic over mutual TLS',
    default: false,
  },
  'certificate-lifetime-hours': {
    type: 'number',
    description: 'Lifetime of issued client and llm-host certificates (renewed with a third left)',
    default: 24,
  },
  'watch-namespace': { type: 'string', description: "Namespace to watch ('' = all)", default: '' },
  'llm-host-image': {
    type: 'string',
    description: 'Default llm-host image',
    default: 'ghcr.io/fednano/llm-host:0.1.0',
  },
  'aggregator-image': {
    type: 'string',
    description: 'Default aggregator image',
    default: 'ghcr.io/fednano/aggregator:0.1.0',
  },
  'client-agent-image': {
    type: 'string',
    description: 'Default client-agent image',
    default: 'ghcr.io/fednano/client-agent:0.1.0',
  },
  'leader-elect': {
    type: 'boolean',
    description: 'Elect a leader with a Lease (run several replicas)',
    default: false,
  },
  'lease-namespace': { type: 'string', description: 'Namespace of the leader election Lease', default: 'default' },
  'pod-name': {
    type: 'string',
    description: "This replica's Pod name (the chart sets it from the downward API); names it in the Lease",
  },
  'ops-port': { type: 'number', description: 'HTTP port for /metrics, /healthz, /readyz', default: 9090 },
  workers: { type: 'number', description: 'Reconcile workers per controller', default: 4 },
  'log-level': { type: 'string', description: 'pino log level (trace, debug, info, warn, error)', default: 'info' },
} as const satisfies FlagSpecs;

function securitySettings(flags: {
  'nats-accounts-secret'?: string;
  'nats-creds'?: string;
  mtls: boolean;
  'certificate-lifetime-hours': number;
}): SecuritySettings {
  const s: SecuritySettings = {
    mtls: flags.mtls,
    certificateLifetimeMs: flags['certificate-lifetime-hours'] * 3_600_000,
  };
  if (!(flags['certificate-lifetime-hours'] > 0)) throw new Error('--certificate-lifetime-hours must be positive');
  if (flags['nats-accounts-secret']) {
    const [namespace, name, ...rest] = flags['nats-accounts-secret'].split('/');
    if (!namespace || !name || rest.length > 0)
      throw new Error(`--nats-accounts-secret must be namespace/name, got '${flags['nats-accounts-secret']}'`);
    if (flags['nats-creds']) throw new Error('--nats-creds and --nats-accounts-secret exclude each other');
    s.natsAccounts = { namespace, name };
  }
  return s;
}

/** The operator's connection to one federation's account, with its seed from the federation's identities Secret. */
async function connectToAccount(kube: Kube, f: FederationRef, servers: string) {
  const seed = await operatorNatsSeed(kube, f);
  if (!seed) throw new NatsAccountPending(`the NATS identities of ${f.namespace}/${f.federation} are not issued yet`);
  try {
    return await connectNats({
      servers,
      name: `fednano-operator-${f.namespace}-${f.federation}`,
      nkeySeed: seed,
      reconnectForever: true,
    });
  } catch (e) {
    if (/authorization violation/i.test((e as Error).message))
      throw new NatsAccountPending(
        `NATS does not know account ${federationAccount(f)} yet: the server must include the accounts Secret's accounts.conf and reload it`,
      );
    throw e;
  }
}

export async function main(argv: string[]): Promise<void> {
  const flags = serviceFlags(
    'fednano-operator',
    'Reconciles Federation and FederationRound resources.',
    OPERATOR_FLAGS,
    argv,
  );
  process.env.FEDNANO_LOG_LEVEL = flags['log-level'];
  const log = createLogger('operator');
  try {
    const kc = new KubeConfig();
    if (flags.kubeconfig) kc.loadFromFile(flags.kubeconfig);
    else kc.loadFromDefault();
    const security = securitySettings(flags);
    const openStore = security.natsAccounts
      ? async (kube: Kube): Promise<WatchedRoundStore> =>
          new AccountRoundStores((f) => connectToAccount(kube, f, flags.nats))
      : async (): Promise<WatchedRoundStore> =>
          NatsRoundStore.connect(
            await connectNats({
              servers: flags.nats,
              name: 'fednano-operator',
              credsFile: flags['nats-creds'],
              reconnectForever: true,
            }),
            true,
          );
    const operator = new Operator(kc, openStore, {
      settings: {
        security,
        natsUrl: flags.nats,
        images: {
          llmHost: flags['llm-host-image'],
          aggregator: flags['aggregator-image'],
          clientAgent: flags['client-agent-image'],
        },
      },
      watchNamespace: flags['watch-namespace'],
      leaderElection: flags['leader-elect']
        ? {
            namespace: flags['lease-namespace'],
            // `kubectl get lease` then names the leading Pod; the suffix tells a restarted container from its
            // predecessor, which may still hold the Lease until it expires.
            identity: flags['pod-name'] ? `${flags['pod-name']}_${randomUUID().slice(0, 8)}` : undefined,
          }
        : undefined,
      workers: flags.workers,
      log,
    });
    const ops = await startOpsServer({
      port: flags['ops-port'],
      registry: operator.metrics.registry,
      ready: () => operator.ready || operator.standby,
    });
    onShutdown(log, async () => {
      await operator.stop();
      await ops.close();
    });
    await operator.start();
  } catch (e) {
    log.fatal({ err: e }, 'operator failed to start');
    process.exit(1);
  }
}
