import { createLogger, type FlagSpecs, onShutdown, serviceFlags, startOpsServer } from '@fednano/service-kit';
import { connectNats } from '@fednano/wire';
import { KubeConfig } from '@kubernetes/client-node';
import { Operator } from './operator.js';

export const OPERATOR_FLAGS = {
  kubeconfig: {
    type: 'string',
    description: 'kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then the in-cluster service account)',
  },
  nats: { type: 'string', description: 'NATS server URL(s) with JetStream', default: 'nats://nats:4222' },
  'nats-creds': { type: 'string', description: 'NATS credentials file' },
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
  'ops-port': { type: 'number', description: 'HTTP port for /metrics, /healthz, /readyz', default: 9090 },
  workers: { type: 'number', description: 'Reconcile workers per controller', default: 4 },
  'log-level': { type: 'string', description: 'pino log level (trace, debug, info, warn, error)', default: 'info' },
} as const satisfies FlagSpecs;

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
    const nc = await connectNats({
      servers: flags.nats,
      name: 'fednano-operator',
      credsFile: flags['nats-creds'],
      reconnectForever: true,
    });
    const operator = new Operator(kc, nc, {
      settings: {
        natsUrl: flags.nats,
        images: {
          llmHost: flags['llm-host-image'],
          aggregator: flags['aggregator-image'],
          clientAgent: flags['client-agent-image'],
        },
      },
      watchNamespace: flags['watch-namespace'],
      leaderElection: flags['leader-elect'] ? { namespace: flags['lease-namespace'] } : undefined,
      workers: flags.workers,
      log,
    });
    const ops = await startOpsServer({
      port: flags['ops-port'],
      registry: operator.metrics.registry,
      ready: () => operator.ready,
    });
    onShutdown(log, async () => {
      await operator.stop();
      await nc.drain();
      await ops.close();
    });
    await operator.start();
  } catch (e) {
    log.fatal({ err: e }, 'operator failed to start');
    process.exit(1);
  }
}
