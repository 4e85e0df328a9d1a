import { DEFAULT_MAX_UPDATE_BYTES } from '@fednano/core';
import { createLogger, type FlagSpecs, onShutdown, serviceFlags, startOpsServer } from '@fednano/service-kit';
import { checkName, connectNats } from '@fednano/wire';
import { Aggregator } from './aggregator.js';
import { HeldOutEvaluator } from './evaluation.js';
import { aggregatorMetrics } from './metrics.js';

export const AGGREGATOR_FLAGS = {
  nats: { type: 'string', description: 'NATS server URL(s), comma-separated', default: 'nats://127.0.0.1:4222' },
  'nats-creds': { type: 'string', description: 'NATS credentials file (user JWT + NKey seed)' },
  namespace: { type: 'string', description: 'Kubernetes namespace of the federation', default: 'default' },
  federation: { type: 'string', description: 'Federation name', required: true },
  'ops-port': { type: 'number', description: 'HTTP port for /metrics, /healthz, /readyz', default: 9090 },
  'ack-wait-ms': {
    type: 'number',
    description: 'JetStream redelivery delay for unacknowledged updates (crash recovery)',
    default: 10_000,
  },
  'max-update-bytes': { type: 'number', description: 'Largest update accepted', default: DEFAULT_MAX_UPDATE_BYTES },
  model: {
    type: 'string',
    description:
      'Model folder; with --adapter-rank/--adapter-alpha, the aggregator writes the initial adapter (round 0)',
  },
  'adapter-rank': { type: 'number', description: 'NanoAdapter rank, for the initial adapter' },
  'adapter-alpha': { type: 'number', description: 'NanoAdapter alpha, for the initial adapter' },
  seed: { type: 'number', description: 'Seed of the initial adapter', default: 0 },
  'evaluation-data': {
    type: 'string',
    description:
      'Held-out shard folder (shard.json + pixels); with --model, each new global adapter is scored on it and the accuracy recorded with its round',
  },
} as const satisfies FlagSpecs;

export async function main(argv: string[]): Promise<void> {
  const flags = serviceFlags(
    'fednano-aggregator',
    "Aggregates one federation's adapter updates from NATS JetStream.",
    AGGREGATOR_FLAGS,
    argv,
    (f) => {
      checkName('namespace', f.namespace);
      checkName('federation', f.federation);
      if (f['evaluation-data'] && !f.model)
        throw new Error('--evaluation-data needs --model: the frozen model the held-out set is scored with');
    },
  );
  const log = createLogger('aggregator', { namespace: flags.namespace, federation: flags.federation });
  const metrics = aggregatorMetrics();
  let aggregator: Aggregator | undefined;
  const ops = await startOpsServer({
    port: flags['ops-port'],
    registry: metrics.registry,
    ready: () => aggregator?.ready ?? false,
  });
  const data = flags['evaluation-data'];
  const evaluator = data && flags.model ? new HeldOutEvaluator(flags.model, data) : undefined;
  try {
    const nc = await connectNats({
      servers: flags.nats,
      name: `aggregator-${flags.namespace}-${flags.federation}`,
      credsFile: flags['nats-creds'],
      reconnectForever: true,
    });
    aggregator = new Aggregator(nc, {
      namespace: flags.namespace,
      federation: flags.federation,
      ackWaitMs: flags['ack-wait-ms'],
      maxUpdateBytes: flags['max-update-bytes'],
      metrics,
      log,
      evaluator,
    });
    onShutdown(log, async () => {
      await aggregator?.stop();
      await evaluator?.close();
      await nc.drain();
      await ops.close();
    });
    await aggregator.start();
    if (flags.model && flags['adapter-rank'] && flags['adapter-alpha'])
      await aggregator.ensureInitialAdapter(flags.model, {
        rank: flags['adapter-rank'],
        alpha: flags['adapter-alpha'],
        seed: flags.seed,
      });
    log.info({ opsPort: ops.port }, 'listening');
  } catch (e) {
    log.fatal({ err: e }, 'aggregator failed to start');
    process.exit(1);
  }
}
