/**
 * npm run bench:operator [-- --clients 100]: the operator on a 100-client FederationRound against the emulated
 * Kubernetes API server (real HTTP, real client-node), with a real nats-server for the round records.
 *
 * The operator runs in this process (its production code: informers, work queues, reconcilers). Nothing runs the
 * pods: the bench marks the llm-host and aggregator Deployments available and writes round 0 itself, then applies a
 * FederationRound and measures the time until all client-agent pods exist; then it plays the aggregator (every
 * update accepted, in batches of 10, then Aggregated; every pod Succeeded) and measures the time until the round is Succeeded. Reported:
 * those times, reconcile duration p50/p99 (from the operator's histogram, interpolated within buckets), API requests
 * per round by verb, and 409 conflicts. Baseline in the same run: the same number of bare pod creates from one
 * client-node client in sequence, the floor for "all pods created".
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { NatsRoundStore, Operator } from '@fednano/operator';
import { createLogger, NatsServer } from '@fednano/service-kit';
import { connectNats, ensureStorage, updateRoundStatus, writeInitialRound } from '@fednano/wire';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { startKubeApi } from '../test/support/kube-api/index.js';
import { printResult, printTable, round } from './report.js';

const { values: flags } = parseArgs({ options: { clients: { type: 'string', default: '100' } } });
const N = Number(flags.clients);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NS = 'bench';
const log = createLogger('bench-operator');
log.level = 'silent';

const api = await startKubeApi({
  crds: [join(ROOT, 'crds/fednano.io_federations.yaml'), join(ROOT, 'crds/fednano.io_federationrounds.yaml')],
  namespaces: [NS, 'baseline'],
});
const nats = await NatsServer.start();
const nc = await connectNats({ servers: nats.url, name: 'bench-operator' });
const kc = new KubeConfig();
kc.loadFromString(api.kubeconfig());
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);
const until = async (what: string, ok: () => boolean, timeoutMs = 120_000) => {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};
const operator = new Operator(kc, async () => NatsRoundStore.connect(nc), {
  settings: { natsUrl: nats.url, images: { llmHost: 'l', aggregator: 'a', clientAgent: 'c' } },
  watchNamespace: '',
  log,
});
try {
  // Baseline: N bare pod creates in sequence, from one client.
  const tb = performance.now();
  for (let i = 0; i < N; i++)
    await core.createNamespacedPod({
      namespace: 'baseline',
      body: { metadata: { name: `p-${i}` }, spec: { containers: [{ name: 'c', image: 'x' }] } },
    });
  const baselineS = (performance.now() - tb) / 1000;

  await operator.start();
  const clients = Array.from({ length: N }, (_, i) => ({
    name: `client-${i}`,
    nodeSelector: { 'kubernetes.io/hostname': `edge-${i}` },
    dataVolume: { hostPath: { path: `/data/client-${i}` } },
  }));
  await custom.createNamespacedCustomObject({
    group: 'fednano.io',
    version: 'v1alpha1',
    namespace: NS,
    plural: 'federations',
    body: {
      apiVersion: 'fednano.io/v1alpha1',
      kind: 'Federation',
      metadata: { name: 'fed' },
      spec: {
        model: { path: 'models/reference' },
        clients,
        adapter: { rank: 16, alpha: 32 },
        strategy: { name: 'fedavg' },
        training: { localSteps: 5, batchSize: 8, learningRate: 0.01, optimizer: 'adamw' },
        participation: { fraction: 1 },
      },
    },
  });
  const deployment = (name: string) => api.get<{ status?: object }>('deployments.apps', NS, name);
  await until('the federation deployments', () => !!deployment('fed-llm-host') && !!deployment('fed-aggregator'));
  for (const name of ['fed-llm-host', 'fed-aggregator']) {
    const d = deployment(name)!;
    api.updateStatus({ ...d, status: { replicas: 1, readyReplicas: 1, availableReplicas: 1 } });
  }
  const { kv } = await ensureStorage(nc);
  const f = { namespace: NS, federation: 'fed' };
  await writeInitialRound(kv, f, {
    dModel: 128,
    adapter: { rank: 16, alpha: 32, seed: 0 },
    object: 'bench/fed/round-0',
    sha256: '0'.repeat(64),
  });
  await new Promise((r) => setTimeout(r, 200));

  // The measured round.
  await operator.metrics.reconcileDuration.reset();
  api.resetCounters();
  const conflicts0 = api.conflictCount;
  const t0 = performance.now();
  await custom.createNamespacedCustomObject({
    group: 'fednano.io',
    version: 'v1alpha1',
    namespace: NS,
    plural: 'federationrounds',
    body: {
      apiVersion: 'fednano.io/v1alpha1',
      kind: 'FederationRound',
      metadata: { name: 'round-1' },
      spec: { federationRef: { name: 'fed' }, round: 1, deadlineSeconds: 600 },
    },
  });
  const pods = () => api.list('pods', { namespace: NS, labelSelector: 'fednano.io/round=round-1' });
  await until(`${N} client pods`, () => pods().length === N);
  const podsS = (performance.now() - t0) / 1000;
  // Play the kubelet (every pod ran to completion) and the aggregator (every update accepted, in batches, then the
  // decision).
  for (const p of pods() as { status?: object }[]) api.updateStatus({ ...p, status: { phase: 'Succeeded' } });
  for (let i = 0; i < N; i += 10)
    await updateRoundStatus(kv, f, 1, (d) => ({
      ...d.status,
      accepted: [
        ...d.status.accepted,
        ...clients
          .slice(i, i + 10)
          .map((c, k) => ({ client: c.name, seq: i + k + 1, samples: 10, loss: 1, bytes: 33_000 })),
      ],
    }));
  await updateRoundStatus(kv, f, 1, (d) => ({
    ...d.status,
    state: 'Aggregated',
    result: { object: 'bench/fed/round-1', sha256: '1'.repeat(64) },
    metrics: { meanTrainLoss: 1, meanUpdateBytes: 33_000 },
  }));
  const fr = () =>
    api.get<{ status?: { phase?: string; received?: number } }>('federationrounds.fednano.io', NS, 'round-1');
  await until('Succeeded', () => fr()?.status?.phase === 'Succeeded' && fr()?.status?.received === N);
  const doneS = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 300));

  const hist = (await operator.metrics.reconcileDuration.get()).values;
  const quantile = (q: number, controller: string) => {
    const buckets = hist
      .filter((v) => v.labels.controller === controller && v.metricName?.endsWith('_bucket'))
      .map((v) => ({ le: Number((v.labels as Record<string, string | number>).le), count: v.value }))
      .sort((a, b) => a.le - b.le);
    const total = buckets.at(-1)?.count ?? 0;
    let prevLe = 0;
    let prevCount = 0;
    for (const b of buckets) {
      if (b.count >= q * total) {
        if (!Number.isFinite(b.le)) return prevLe;
        return prevLe + ((q * total - prevCount) / Math.max(1, b.count - prevCount)) * (b.le - prevLe);
      }
      prevLe = b.le;
      prevCount = b.count;
    }
    return prevLe;
  };
  const count = (controller: string) =>
    hist.find(
      (v) => v.labels.controller === controller && v.metricName?.endsWith('_count') && v.labels.result === 'success',
    )?.value ?? 0;
  const requests = api.requests;
  const conflicts = api.conflictCount - conflicts0;
  printTable(
    ['measure', 'value'],
    [
      [`${N} bare pod creates in sequence (baseline), s`, round(baselineS)],
      [`apply -> all ${N} client pods created, s`, round(podsS)],
      ['apply -> round Succeeded (updates played by the bench), s', round(doneS)],
      ['round reconciles (success)', count('federationround')],
      [
        'round reconcile p50 / p99, ms',
        `${round(1000 * quantile(0.5, 'federationround'))} / ${round(1000 * quantile(0.99, 'federationround'))}`,
      ],
      [
        'federation reconcile p50 / p99, ms',
        `${round(1000 * quantile(0.5, 'federation'))} / ${round(1000 * quantile(0.99, 'federation'))}`,
      ],
      ['API requests during the round (all clients, incl. informer lists/watches)', api.requestCount],
      [
        '  by verb',
        Object.entries(requests)
          .filter(([, v]) => v)
          .map(([k, v]) => `${k} ${v}`)
          .join(', '),
      ],
      ['409 conflicts', conflicts],
    ],
  );
  printResult({
    clients: N,
    pods_created_s: podsS,
    baseline_creates_s: baselineS,
    pods_vs_baseline: podsS / baselineS,
    succeeded_s: doneS,
    reconcile_p50_ms: 1000 * quantile(0.5, 'federationround'),
    reconcile_p99_ms: 1000 * quantile(0.99, 'federationround'),
    api_requests_round: api.requestCount,
    api_requests_per_client: api.requestCount / N,
    conflicts,
  });
} finally {
  await operator.stop();
  await nc.close();
  await nats.stop();
  await api.close();
}
// Informer watch sockets of client-node can outlive stop(); the bench is done, so end the process.
process.exit(0);
