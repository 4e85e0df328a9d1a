/**
 * npm run bench:operator [-- --clients 100] [-- --target emulated|real|both]: the operator on a 100-client
 * FederationRound against the emulated Kubernetes API server (test/support/kube-api) and against the real
 * kube-apiserver (test/support/control-plane.ts: etcd, kube-apiserver, kube-controller-manager, kube-scheduler built by
 * scripts/install-tools.sh), in the same run, with a real nats-server for the round records. `both` is the default;
 * where the real control plane's tools are missing the real target is skipped with the reason.
 *
 * The operator runs in this process (its production code: informers, work queues, reconcilers). Nothing runs the
 * pods (there is no kubelet): the bench marks the llm-host and aggregator Deployments available (status subresource)
 * and writes round 0 itself, then creates a FederationRound and measures the time until all client-agent pods exist;
 * then it plays the aggregator (every update accepted, in batches of 10, then Aggregated) and the kubelet (every pod
 * Succeeded, status subresource) and measures the time until the round is Succeeded. Reported per target: those times,
 * reconcile duration p50/p99 (from the operator's histogram, interpolated within buckets), the operator's API requests
 * during the round by verb (writes per client), and 409 conflicts. Baseline on each target, in the same run: the same
 * number of bare pod creates from one client-node client in sequence, the floor for "all pods created".
 *
 * Counting: on the emulated server, its request counters (the bench's own writes go around HTTP, so only the
 * operator's requests are counted); on the real server, its audit log (level Metadata, only for the operator's
 * ServiceAccount, which the operator authenticates as with a TokenRequest token bound to cluster-admin), so both count
 * what the server answered, 409s included. On the real server the deployment and replicaset controllers are disabled:
 * with no kubelet they would overwrite the availability the bench writes; the scheduler, garbage collector and the
 * other controllers run (the scheduler marks the unplaceable client pods PodScheduled=False, as it would).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { NatsRoundStore, Operator } from '@fednano/operator';
import { createLogger, NatsServer } from '@fednano/service-kit';
import { connectNats, ensureStorage, updateRoundStatus, writeInitialRound } from '@fednano/wire';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  RbacAuthorizationV1Api,
  type V1Pod,
} from '@kubernetes/client-node';
import { ControlPlane, controlPlaneProblem } from '../test/support/control-plane.js';
import { startKubeApi } from '../test/support/kube-api/index.js';
import { toolPath } from '../test/support/tools.js';
import { printResult, printTable, round } from './report.js';

const { values: flags } = parseArgs({
  options: { clients: { type: 'string', default: '100' }, target: { type: 'string', default: 'both' } },
});
const N = Number(flags.clients);
if (!['emulated', 'real', 'both'].includes(flags.target!)) {
  process.stderr.write(`--target must be emulated, real or both (got ${flags.target})\n`);
  process.exit(2);
}
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CRDS = [join(ROOT, 'crds/fednano.io_federations.yaml'), join(ROOT, 'crds/fednano.io_federationrounds.yaml')];
const NS = 'bench';
const OPERATOR_SA = 'fednano-operator';
const VERBS = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection'] as const;
const WRITES = new Set(['create', 'update', 'patch', 'delete', 'deletecollection']);
const log = createLogger('bench-operator');
log.level = 'silent';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Obj = { metadata?: { name?: string; resourceVersion?: string }; status?: Record<string, unknown> };
interface Counts {
  byVerb: Record<string, number>;
  byResource: Record<string, number>;
  conflicts: number;
}

/** One API server under test: clients for the bench and the operator, the bench's own actions, request counts. */
interface Target {
  name: 'emulated' | 'real';
  /** The bench's client (baseline pod creates). */
  admin: KubeConfig;
  /** What the operator authenticates as (its requests are the ones counted). */
  operator: KubeConfig;
  createNamespaces(names: string[]): Promise<void>;
  /** The bench's own reads and writes (not counted). */
  deployment(name: string): Promise<Obj | undefined>;
  markAvailable(d: Obj): Promise<void>;
  roundPods(): Promise<Obj[]>;
  markSucceeded(pods: Obj[]): Promise<void>;
  createRound(body: object): Promise<void>;
  round(): Promise<Obj | undefined>;
  resetCounts(): Promise<void>;
  counts(): Promise<Counts>;
  close(): Promise<void>;
}

async function emulatedTarget(): Promise<Target> {
  const api = await startKubeApi({ crds: CRDS });
  const kc = new KubeConfig();
  kc.loadFromString(api.kubeconfig());
  const maybe = <T>(f: () => T) => {
    try {
      return f();
    } catch {
      return undefined;
    }
  };
  return {
    name: 'emulated',
    admin: kc,
    operator: kc,
    async createNamespaces(names) {
      for (const name of names) api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    },
    deployment: async (name) => maybe(() => api.get<Obj>('deployments.apps', NS, name)),
    markAvailable: async (d) =>
      void api.updateStatus({ ...d, status: { replicas: 1, readyReplicas: 1, availableReplicas: 1 } }),
    roundPods: async () => api.list<Obj>('pods', { namespace: NS, labelSelector: 'fednano.io/round=round-1' }),
    markSucceeded: async (pods) => {
      for (const p of pods) api.updateStatus({ ...p, status: { ...p.status, phase: 'Succeeded' } });
    },
    createRound: async (body) => void api.create(body),
    round: async () => maybe(() => api.get<Obj>('federationrounds.fednano.io', NS, 'round-1')),
    resetCounts: async () => api.resetCounters(),
    counts: async () => ({
      byVerb: { ...api.requests },
      byResource: { ...api.requestsByResource },
      conflicts: api.conflictCount,
    }),
    close: () => api.close(),
  };
}

async function realTarget(): Promise<Target> {
  const work = await mkdtemp(join(tmpdir(), 'fednano-bench-operator-'));
  const auditLog = join(work, 'audit.log');
  const policy = join(work, 'audit-policy.yaml');
  await writeFile(
    policy,
    `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: ["system:serviceaccount:${NS}:${OPERATOR_SA}"]
- level: None
`,
  );
  const cp = await ControlPlane.start({
    apiServerFlags: [`--audit-policy-file=${policy}`, `--audit-log-path=${auditLog}`, '--audit-log-mode=blocking'],
    // Repeated --controllers values add to the control plane's `*`.
    controllerManagerFlags: ['--controllers=-deployment-controller,-replicaset-controller'],
  });
  try {
    const admin = cp.kubeConfig();
    const core = admin.makeApiClient(CoreV1Api);
    const apps = admin.makeApiClient(AppsV1Api);
    const custom = admin.makeApiClient(CustomObjectsApi);
    execFileSync(toolPath('kubectl'), ['--kubeconfig', cp.kubeconfigPath, 'apply', ...CRDS.flatMap((f) => ['-f', f])]);
    execFileSync(toolPath('kubectl'), [
      '--kubeconfig',
      cp.kubeconfigPath,
      'wait',
      '--for=condition=Established',
      'crd/federations.fednano.io',
      'crd/federationrounds.fednano.io',
    ]);
    const createNamespaces = async (names: string[]) => {
      for (const name of names) await core.createNamespace({ body: { metadata: { name } } });
      // The ServiceAccount admission plugin refuses pods until the controller manager made `default` there.
      for (const namespace of names)
        for (let i = 0; ; i++) {
          try {
            await core.readNamespacedServiceAccount({ namespace, name: 'default' });
            break;
          } catch (e) {
            if (i > 300) throw e;
            await sleep(100);
          }
        }
    };
    await createNamespaces([NS]);
    await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: OPERATOR_SA } } });
    await admin.makeApiClient(RbacAuthorizationV1Api).createClusterRoleBinding({
      body: {
        metadata: { name: 'bench-operator' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
        subjects: [{ kind: 'ServiceAccount', name: OPERATOR_SA, namespace: NS }],
      },
    });
    const operator = new KubeConfig();
    operator.loadFromFile(await cp.serviceAccountKubeconfig(NS, OPERATOR_SA, join(work, 'operator.kubeconfig')));
    let offset = 0;
    const events = async () => (await readFile(auditLog, 'utf8').catch(() => '')).slice(offset);
    const orNone = async <T>(p: Promise<T>) => p.catch(() => undefined);
    return {
      name: 'real',
      admin,
      operator,
      createNamespaces: (names) => createNamespaces(names.filter((n) => n !== NS)),
      deployment: (name) => orNone(apps.readNamespacedDeployment({ namespace: NS, name }) as Promise<Obj>),
      markAvailable: async (d) =>
        void (await apps.replaceNamespacedDeploymentStatus({
          namespace: NS,
          name: d.metadata!.name!,
          body: { ...d, status: { replicas: 1, readyReplicas: 1, availableReplicas: 1 } } as never,
        })),
      roundPods: async () =>
        (await core.listNamespacedPod({ namespace: NS, labelSelector: 'fednano.io/round=round-1' })).items as Obj[],
      markSucceeded: async (pods) => {
        // A kubelet per node reports its own pods: in parallel, 10 at a time.
        const queue = [...pods];
        const worker = async () => {
          for (let p = queue.shift(); p; p = queue.shift()) {
            const pod = p as V1Pod;
            await core.replaceNamespacedPodStatus({
              namespace: NS,
              name: pod.metadata!.name!,
              body: { ...pod, status: { ...pod.status, phase: 'Succeeded' } },
            });
          }
        };
        await Promise.all(Array.from({ length: 10 }, worker));
      },
      createRound: async (body) =>
        void (await custom.createNamespacedCustomObject({
          group: 'fednano.io',
          version: 'v1alpha1',
          namespace: NS,
          plural: 'federationrounds',
          body,
        })),
      round: () =>
        orNone(
          custom.getNamespacedCustomObject({
            group: 'fednano.io',
            version: 'v1alpha1',
            namespace: NS,
            plural: 'federationrounds',
            name: 'round-1',
          }) as Promise<Obj>,
        ),
      resetCounts: async () => {
        offset = (await readFile(auditLog, 'utf8').catch(() => '')).length;
      },
      counts: async () => {
        const c: Counts = { byVerb: Object.fromEntries(VERBS.map((v) => [v, 0])), byResource: {}, conflicts: 0 };
        for (const line of (await events()).split('\n')) {
          if (!line) continue;
          const e = JSON.parse(line) as {
            stage: string;
            verb: string;
            objectRef?: { resource?: string; subresource?: string; apiGroup?: string };
            responseStatus?: { code?: number };
          };
          // A watch is counted when it starts (like the emulator does), everything else when answered.
          if (e.verb === 'watch' ? e.stage !== 'ResponseStarted' : e.stage !== 'ResponseComplete') continue;
          c.byVerb[e.verb] = (c.byVerb[e.verb] ?? 0) + 1;
          const r = e.objectRef;
          const key = `${e.verb} ${r?.resource}${r?.apiGroup ? `.${r.apiGroup}` : ''}${r?.subresource ? `/${r.subresource}` : ''}`;
          c.byResource[key] = (c.byResource[key] ?? 0) + 1;
          if (e.responseStatus?.code === 409) c.conflicts++;
        }
        return c;
      },
      close: async () => {
        await cp.stop();
        await rm(work, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await cp.stop();
    throw e;
  }
}

interface Measured {
  target: string;
  baselineS: number;
  podsS: number;
  doneS: number;
  reconciles: number;
  p50: number;
  p99: number;
  fedP50: number;
  fedP99: number;
  counts: Counts;
}

async function measure(t: Target, natsUrl: string): Promise<Measured> {
  const nc = await connectNats({ servers: natsUrl, name: `bench-operator-${t.name}` });
  const until = async <T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 180_000) => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (ok(v)) return v;
      if (Date.now() > end) throw new Error(`${t.name}: timed out waiting for ${what}`);
      await sleep(t.name === 'real' ? 20 : 5);
    }
  };
  await t.createNamespaces([NS, 'baseline']);
  const core = t.admin.makeApiClient(CoreV1Api);
  const custom = t.admin.makeApiClient(CustomObjectsApi);
  const operator = new Operator(t.operator, async () => NatsRoundStore.connect(nc), {
    settings: { natsUrl, images: { llmHost: 'l', aggregator: 'a', clientAgent: 'c' } },
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
    for (const name of ['fed-llm-host', 'fed-aggregator'])
      await t.markAvailable(
        await until(
          `deployment ${name}`,
          () => t.deployment(name),
          (d) => !!d,
        ).then((d) => d!),
      );
    const { kv } = await ensureStorage(nc);
    const f = { namespace: NS, federation: 'fed' };
    await writeInitialRound(kv, f, {
      dModel: 128,
      adapter: { rank: 16, alpha: 32, seed: 0 },
      object: 'bench/fed/round-0',
      sha256: '0'.repeat(64),
    });
    await sleep(t.name === 'real' ? 1000 : 200);

    // The measured round.
    operator.metrics.reconcileDuration.reset();
    await t.resetCounts();
    const t0 = performance.now();
    await t.createRound({
      apiVersion: 'fednano.io/v1alpha1',
      kind: 'FederationRound',
      metadata: { name: 'round-1', namespace: NS },
      spec: { federationRef: { name: 'fed' }, round: 1, deadlineSeconds: 600 },
    });
    const pods = await until(
      `${N} client pods`,
      () => t.roundPods(),
      (p) => p.length === N,
    );
    const podsS = (performance.now() - t0) / 1000;
    // Play the kubelet (every pod ran to completion) and the aggregator (every update accepted, in batches, then the
    // decision).
    await t.markSucceeded(pods);
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
    await until(
      'Succeeded',
      () => t.round(),
      (r) => r?.status?.phase === 'Succeeded' && r.status.received === N,
    );
    const doneS = (performance.now() - t0) / 1000;
    await sleep(t.name === 'real' ? 1000 : 300);
    const counts = await t.counts();

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
    const reconciles =
      hist.find(
        (v) =>
          v.labels.controller === 'federationround' &&
          v.metricName?.endsWith('_count') &&
          v.labels.result === 'success',
      )?.value ?? 0;
    return {
      target: t.name,
      baselineS,
      podsS,
      doneS,
      reconciles,
      p50: 1000 * quantile(0.5, 'federationround'),
      p99: 1000 * quantile(0.99, 'federationround'),
      fedP50: 1000 * quantile(0.5, 'federation'),
      fedP99: 1000 * quantile(0.99, 'federation'),
      counts,
    };
  } finally {
    await operator.stop();
    await nc.close();
  }
}

const wanted = flags.target === 'both' ? (['emulated', 'real'] as const) : ([flags.target] as ('emulated' | 'real')[]);
const results: Measured[] = [];
const skipped: string[] = [];
const nats = await NatsServer.start();
try {
  for (const name of wanted) {
    if (name === 'real') {
      const problem = controlPlaneProblem();
      if (problem) {
        const why = `real API server skipped: ${problem}`;
        process.stderr.write(`\n*** bench:operator: ${why} ***\n\n`);
        if (flags.target === 'real') throw new Error(why);
        skipped.push(why);
        continue;
      }
    }
    process.stderr.write(`bench:operator: ${name} API server, ${N} clients...\n`);
    // Each target gets its own NATS JetStream state: a fresh server per target.
    const own = name === wanted[0] ? nats : await NatsServer.start();
    const t = name === 'emulated' ? await emulatedTarget() : await realTarget();
    try {
      results.push(await measure(t, own.url));
    } finally {
      await t.close();
      if (own !== nats) await own.stop();
    }
  }
} finally {
  await nats.stop();
}

const writes = (c: Counts) => VERBS.filter((v) => WRITES.has(v)).reduce((s, v) => s + (c.byVerb[v] ?? 0), 0);
const total = (c: Counts) => Object.values(c.byVerb).reduce((s, v) => s + v, 0);
const byVerb = (c: Counts, only?: Set<string>) =>
  VERBS.filter((v) => (c.byVerb[v] ?? 0) > 0 && (!only || only.has(v)))
    .map((v) => `${v} ${round((c.byVerb[v] ?? 0) / N, 2)}`)
    .join(', ');
const rows: (string | number)[][] = [
  [`${N} bare pod creates in sequence (baseline), s`, ...results.map((r) => round(r.baselineS))],
  [`round created -> all ${N} client pods exist, s`, ...results.map((r) => round(r.podsS))],
  ['  / baseline', ...results.map((r) => round(r.podsS / r.baselineS, 2))],
  ['round created -> Succeeded (pods + updates played by the bench), s', ...results.map((r) => round(r.doneS))],
  ['  / baseline', ...results.map((r) => round(r.doneS / r.baselineS, 2))],
  ['round reconciles (success)', ...results.map((r) => r.reconciles)],
  ['round reconcile p50 / p99, ms', ...results.map((r) => `${round(r.p50)} / ${round(r.p99)}`)],
  ['federation reconcile p50 / p99, ms', ...results.map((r) => `${round(r.fedP50)} / ${round(r.fedP99)}`)],
  ["operator's API requests during the round", ...results.map((r) => total(r.counts))],
  ['API writes per client', ...results.map((r) => round(writes(r.counts) / N, 2))],
  ['  by verb, per client', ...results.map((r) => byVerb(r.counts, WRITES))],
  ['reads per client (get/list/watch)', ...results.map((r) => byVerb(r.counts, new Set(['get', 'list', 'watch'])))],
  ['409 conflicts', ...results.map((r) => r.counts.conflicts)],
];
printTable(['measure', ...results.map((r) => `${r.target} API server`)], rows);
for (const r of results)
  process.stdout.write(
    `\n${r.target}: requests by resource: ${Object.entries(r.counts.byResource)
      .sort()
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}\n`,
  );
for (const s of skipped) process.stdout.write(`\n${s}\n`);
const result: Record<string, number | string> = { clients: N };
for (const r of results) {
  const p = r.target;
  Object.assign(result, {
    [`${p}_pods_created_s`]: r.podsS,
    [`${p}_baseline_creates_s`]: r.baselineS,
    [`${p}_pods_vs_baseline`]: r.podsS / r.baselineS,
    [`${p}_succeeded_s`]: r.doneS,
    [`${p}_succeeded_vs_baseline`]: r.doneS / r.baselineS,
    [`${p}_reconcile_p50_ms`]: r.p50,
    [`${p}_reconcile_p99_ms`]: r.p99,
    [`${p}_api_requests_per_client`]: total(r.counts) / N,
    [`${p}_api_writes_per_client`]: writes(r.counts) / N,
    [`${p}_conflicts`]: r.counts.conflicts,
  });
}
const [emu, real] = [results.find((r) => r.target === 'emulated'), results.find((r) => r.target === 'real')];
if (emu && real) result.real_vs_emulated_pods_vs_baseline = real.podsS / real.baselineS / (emu.podsS / emu.baselineS);
if (skipped.length) result.real = 'skipped';
printResult(result);
// Informer watch sockets of client-node can outlive stop(); the bench is done, so end the process.
process.exit(0);
