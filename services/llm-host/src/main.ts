import { labelPrivateParts, loadModelFolder } from '@fednano/model';
import { createLogger, type FlagSpecs, onShutdown, serviceFlags, startOpsServer } from '@fednano/service-kit';
import { checkName, DEFAULT_MAX_MESSAGE_BYTES, serverCredentials } from '@fednano/wire';
import { type CallerPolicy, RevocationList } from './authorization.js';
import { BatchingLlm } from './llm-batching.js';
import { llmHostMetrics } from './metrics.js';
import { createLlmHostServer } from './server.js';

export const LLM_HOST_FLAGS = {
  model: { type: 'string', description: 'Model folder (llm.onnx, llm_vjp.onnx, manifest.json)', required: true },
  host: { type: 'string', description: 'Address the gRPC server binds', default: '0.0.0.0' },
  port: { type: 'number', description: 'gRPC port (0 = any free port)', default: 50051 },
  'ops-port': { type: 'number', description: 'HTTP port for /metrics, /healthz, /readyz', default: 9090 },
  'max-batch': { type: 'number', description: 'Most samples in one ONNX Runtime run', default: 32 },
  'max-delay-ms': {
    type: 'number',
    description:
      'How long the oldest queued request waits for others to fill its batch (0: run as soon as a session is free)',
    default: 2,
  },
  sessions: { type: 'number', description: 'Session pairs (forward + VJP) in worker threads', default: 1 },
  threads: { type: 'number', description: 'ONNX Runtime intra-op threads per session', default: 2 },
  'execution-provider': { type: 'string', description: 'cpu or cuda', default: 'cpu' },
  'max-message-bytes': {
    type: 'number',
    description: 'Largest gRPC message received or sent',
    default: DEFAULT_MAX_MESSAGE_BYTES,
  },
  'tls-cert': { type: 'string', description: 'PEM server certificate (enables TLS)' },
  'tls-key': { type: 'string', description: 'PEM key of the server certificate' },
  'tls-client-ca': { type: 'string', description: 'PEM CA for client certificates (enables mutual TLS)' },
  'serve-label-private': {
    type: 'boolean',
    description:
      'Serve ForwardLogits/BackwardLogits (label-private training: targets stay on the client); builds two more graphs and sessions',
    default: true,
  },
  federation: {
    type: 'string',
    description:
      'namespace/name of the federation served: with mutual TLS, only client certificates naming this federation may call (without it, any certificate from the client CA)',
  },
  'revoked-serials': {
    type: 'string',
    description: 'File of revoked client certificate serials (hex, one per line); re-read when it changes',
  },
} as const satisfies FlagSpecs;

/** Certificate authorization: on with mutual TLS, which then needs to know the federation it serves. */
function callerPolicy(flags: {
  'tls-client-ca'?: string;
  federation?: string;
  'revoked-serials'?: string;
}): CallerPolicy | undefined {
  if (!flags['tls-client-ca']) {
    if (flags.federation || flags['revoked-serials'])
      throw new Error('--federation and --revoked-serials need mutual TLS (--tls-client-ca)');
    return undefined;
  }
  const revoked = new RevocationList(flags['revoked-serials']);
  if (flags.federation === undefined) return { revoked };
  const [namespace, federation, ...rest] = flags.federation.split('/');
  if (!namespace || !federation || rest.length > 0)
    throw new Error(`--federation must be namespace/name, got '${flags.federation}'`);
  return {
    federation: { namespace: checkName('namespace', namespace), federation: checkName('federation', federation) },
    revoked,
  };
}

export async function main(argv: string[]): Promise<void> {
  const flags = serviceFlags(
    'fednano-llm-host',
    'Serves the frozen LLM over gRPC: ForwardBackward, Score, Info.',
    LLM_HOST_FLAGS,
    argv,
    (f) => {
      if (!['cpu', 'cuda'].includes(f['execution-provider']))
        throw new Error(`--execution-provider must be cpu or cuda, got '${f['execution-provider']}'`);
    },
  );
  const log = createLogger('llm-host');
  let queueDepth = () => 0;
  const metrics = llmHostMetrics(() => queueDepth());
  let llm: BatchingLlm | undefined;
  let ready = false;
  const ops = await startOpsServer({ port: flags['ops-port'], registry: metrics.registry, ready: () => ready });
  try {
    const folder = await loadModelFolder(flags.model);
    const cfg = folder.manifest.config;
    const info = {
      modelId: folder.manifest.parts.llm.sha256.slice(0, 12),
      dModel: cfg.dModel,
      contextLength: cfg.contextLength,
      vocabSize: cfg.vocabSize,
    };
    llm = await BatchingLlm.create(
      info,
      {
        llm: folder.files.llm,
        llmVjp: folder.files.llm_vjp,
        // Built from llm.onnx's weights at start (about 0.1 s for the reference model), so the model folder is unchanged.
        ...(flags['serve-label-private'] ? labelPrivateParts(cfg, folder.files.llm) : {}),
      },
      {
        sessions: flags.sessions,
        intraOpThreads: flags.threads,
        executionProvider: flags['execution-provider'] as 'cpu' | 'cuda',
        maxBatch: flags['max-batch'],
        maxDelayMs: flags['max-delay-ms'],
        onBatch: (kind, s) => {
          metrics.batchSize.observe({ kind }, s.samples);
          metrics.batchDuration.observe({ kind }, s.seconds);
          if (s.ok) metrics.samples.inc({ kind }, s.samples);
          metrics.paddedSamples.inc({ kind }, s.paddedSize - s.samples);
        },
      },
    );
    const batching = llm;
    queueDepth = () => Object.values(batching.queueDepth).reduce((a, b) => a + b, 0);
    const authorization = callerPolicy(flags);
    if (authorization && !authorization.federation)
      log.warn('mutual TLS without --federation: any certificate from the client CA may call');
    const server = createLlmHostServer({
      host: llm,
      info,
      maxBatch: flags['max-batch'],
      maxMessageBytes: flags['max-message-bytes'],
      metrics,
      log,
      authorization,
    });
    const credentials = serverCredentials({
      cert: flags['tls-cert'],
      key: flags['tls-key'],
      ca: flags['tls-client-ca'],
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${flags.host}:${flags.port}`, credentials, (e, p) => (e ? reject(e) : resolve(p))),
    );
    ready = true;
    log.info(
      {
        port,
        opsPort: ops.port,
        modelId: info.modelId,
        tls: flags['tls-cert'] ? (flags['tls-client-ca'] ? 'mutual' : 'server') : 'off',
        federation: authorization?.federation,
        executionProvider: flags['execution-provider'],
      },
      'llm-host serving',
    );
    onShutdown(log, async () => {
      ready = false;
      // tryShutdown stops accepting calls and waits for the running ones; the batcher then drains its queue.
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      await batching.close();
      await ops.close();
    });
  } catch (e) {
    log.fatal({ err: e }, 'llm-host failed to start');
    await llm?.close();
    process.exit(1);
  }
}
