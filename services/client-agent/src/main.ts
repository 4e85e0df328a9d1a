import { createLogger, type FlagSpecs, serviceFlags } from '@fednano/service-kit';
import { checkName, connectNats, GrpcLlmHost } from '@fednano/wire';
import type { NatsConnection } from '@nats-io/nats-core';
import { runClientRound } from './agent.js';

export const CLIENT_AGENT_FLAGS = {
  nats: { type: 'string', description: 'NATS server URL(s), comma-separated', default: 'nats://127.0.0.1:4222' },
  'nats-creds': { type: 'string', description: 'NATS credentials file (user JWT + NKey seed)' },
  namespace: { type: 'string', description: 'Kubernetes namespace of the federation', default: 'default' },
  federation: { type: 'string', description: 'Federation name', required: true },
  round: { type: 'number', description: 'Round index (1, 2, ...)', required: true },
  client: { type: 'string', description: "This client's id (as in the roster)", required: true },
  'llm-host': { type: 'string', description: 'llm-host gRPC address host:port', default: '127.0.0.1:50051' },
  'tls-ca': { type: 'string', description: 'PEM CA that signed the llm-host certificate (enables TLS)' },
  'tls-cert': { type: 'string', description: 'PEM client certificate for mutual TLS' },
  'tls-key': { type: 'string', description: 'PEM key of the client certificate' },
  'tls-server-name': {
    type: 'string',
    description: "Name the llm-host's certificate must carry when it differs from the --llm-host address",
  },
  model: {
    type: 'string',
    description: 'Model folder holding the NanoEdge (encoder, connector, embeddings)',
    required: true,
  },
  data: { type: 'string', description: "Folder with this client's data shard (shard.json)", required: true },
  'wait-ms': { type: 'number', description: 'How long to wait for the round to be opened', default: 120_000 },
  'label-private': {
    type: 'boolean',
    description:
      'Label-private split training: the llm-host returns logits at the answer positions and the loss is computed here, so answers never leave this client (more bytes per step)',
    default: false,
  },
  'label-noise': {
    type: 'number',
    description:
      'With --label-private: probability of training on a randomly drawn answer candidate instead of the true answer (randomized response; the host can read the label off the gradient otherwise)',
    default: 0,
  },
  'retry-budget-ms': {
    type: 'number',
    description: 'How long one llm-host call may keep retrying while the host is unavailable',
    default: 180_000,
  },
} as const satisfies FlagSpecs;

/** Exit codes: 0 done (or nothing to do), 1 failed (message on stderr and in the log), 2 bad flags. */
export async function main(argv: string[]): Promise<number> {
  const flags = serviceFlags(
    'fednano-client-agent',
    "Trains one client's round and publishes its update.",
    CLIENT_AGENT_FLAGS,
    argv,
    (f) => {
      checkName('namespace', f.namespace);
      checkName('federation', f.federation);
      checkName('client', f.client);
      if (!Number.isInteger(f.round) || f.round < 1) throw new Error(`--round must be 1 or more, got ${f.round}`);
      if (!(f['label-noise'] >= 0 && f['label-noise'] <= 1))
        throw new Error(`--label-noise must be in [0, 1], got ${f['label-noise']}`);
      if (f['label-noise'] > 0 && !f['label-private']) throw new Error('--label-noise needs --label-private');
    },
  );
  const log = createLogger('client-agent', {
    namespace: flags.namespace,
    federation: flags.federation,
    round: flags.round,
    client: flags.client,
  });
  const host = new GrpcLlmHost(flags['llm-host'], {
    clientId: flags.client,
    tls: { ca: flags['tls-ca'], cert: flags['tls-cert'], key: flags['tls-key'], serverName: flags['tls-server-name'] },
    retry: { budgetMs: flags['retry-budget-ms'] },
    onRetry: (r) => log.warn(r, 'llm-host call failed; retrying'),
  });
  let nc: NatsConnection | undefined;
  try {
    nc = await connectNats({
      servers: flags.nats,
      name: `client-agent-${flags.client}`,
      credsFile: flags['nats-creds'],
    });
    const outcome = await runClientRound(nc, host, {
      namespace: flags.namespace,
      federation: flags.federation,
      round: flags.round,
      client: flags.client,
      modelPath: flags.model,
      dataPath: flags.data,
      waitMs: flags['wait-ms'],
      labelPrivate: flags['label-private'],
      labelNoise: flags['label-noise'],
      log,
    });
    log.info(outcome, outcome.kind === 'published' ? 'update published' : `nothing to do: ${outcome.kind}`);
    return 0;
  } catch (e) {
    log.error({ err: e }, 'round failed');
    process.stderr.write(`fednano-client-agent: ${(e as Error).message}\n`);
    return 1;
  } finally {
    await host.close();
    await nc?.drain().catch(() => {});
  }
}
