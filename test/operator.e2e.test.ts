import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort, httpText, NatsServer, ServiceProcess } from '@fednano/service-kit';
import { connectNats, ensureStorage, readRound } from '@fednano/wire';
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { edgeKubelet, federationManifest, waitFor, writeFixtureShards } from './support/emulated-federation.js';
import { FaultProxy } from './support/fault-proxy.js';
import { type KubeApi, startKubeApi } from './support/kube-api/index.js';
import type { ProcessKubelet } from './support/process-kubelet.js';
import { scoreAdapters } from './support/round-accuracy.js';

/**
 * The operator end to end on an emulated cluster: a Kubernetes API server emulated over real HTTP (driven by the
 * real kubectl where present, and by the real client-node in the operator), a process kubelet that runs Pods as
 * local processes of the service entry points, a real nats-server, real gRPC and ONNX Runtime.
 */
const execFileAsync = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OPERATOR = join(ROOT, 'operator/bin/operator.mjs');
const CRDS = [join(ROOT, 'crds/fednano.io_federations.yaml'), join(ROOT, 'crds/fednano.io_federationrounds.yaml')];
const CLIENTS = ['client-0', 'client-1', 'client-2'];
const hasKubectl = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
if (!hasKubectl)
  process.stderr.write('\n*** kubectl is not on PATH: the e2e applies YAML with client-node instead ***\n\n');

let work: string;
let api: KubeApi;
let nats: NatsServer;
let kubelet: ProcessKubelet;
let operator: ServiceProcess;
let operatorOps: number;
let kubeconfig: string;
let custom: CustomObjectsApi;
/** Pods whose NATS connection goes through a fault proxy: pod name -> proxy (set by a test before the pod starts). */
const natsRoutes = new Map<string, FaultProxy>();
/** Every pod's output lines, by pod name. */
const podLogs = new Map<string, string[]>();

function startOperator(): ServiceProcess {
  const p = ServiceProcess.start({
    name: 'operator',
    entry: OPERATOR,
    args: [
      '--kubeconfig',
      kubeconfig,
      '--nats',
      nats.url,
      '--ops-port',
      String(operatorOps),
      '--llm-host-image',
      'fednano/llm-host:dev',
      '--aggregator-image',
      'fednano/aggregator:dev',
      '--client-agent-image',
      'fednano/client-agent:dev',
      '--leader-elect',
      '--lease-namespace',
      'default',
    ],
    logFile: join(work, 'operator.log'),
  });
  return p;
}

/** The real kubectl, asynchronously: the emulated API server runs in this process and must keep serving. */
async function kubectl(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('kubectl', ['--kubeconfig', kubeconfig, ...args], { encoding: 'utf8' });
  return stdout;
}

async function apply(yaml: string) {
  const file = join(work, `apply-${Date.now()}.yaml`);
  await writeFile(file, yaml);
  if (hasKubectl) await kubectl('apply', '-f', file);
  else {
    const { KubernetesObjectApi } = await import('@kubernetes/client-node');
    const { parseAllDocuments } = await import('yaml');
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const o = KubernetesObjectApi.makeApiClient(kc);
    for (const d of parseAllDocuments(yaml)) await o.create(d.toJSON());
  }
}

const round = async (name: string) =>
  (await custom.getNamespacedCustomObject({
    group: 'fednano.io',
    version: 'v1alpha1',
    namespace: 'default',
    plural: 'federationrounds',
    name,
  })) as {
    status?: {
      phase?: string;
      received?: number;
      expected?: number;
      clients?: { name: string; state: string; restarts?: number }[];
      outputAdapter?: { object: string; sha256: string };
      metrics?: {
        loss?: number;
        accuracy?: number;
        accuracyByType?: Record<string, number>;
        evaluatedExamples?: number;
      };
      conditions?: { type: string; status: string; reason?: string }[];
    };
  };

const until = <T>(
  what: string,
  get: () => Promise<T>,
  ok: (v: T) => boolean,
  timeoutMs = Number(process.env.E2E_TIMEOUT_MS ?? 240_000),
) => waitFor(what, get, ok, timeoutMs, clusterState);

/** What the cluster looks like, for failure messages. */
function clusterState(): string {
  const brief = (o: { metadata?: { name?: string }; status?: unknown }) =>
    `${o.metadata?.name}: ${JSON.stringify(o.status)?.slice(0, 400)}`;
  return [
    'deployments:',
    ...api.list<{ metadata?: { name?: string }; status?: unknown }>('deployments.apps', {}).map(brief),
    'pods:',
    ...api.list<{ metadata?: { name?: string }; status?: unknown }>('pods', {}).map(brief),
    'federations:',
    ...api.list<{ metadata?: { name?: string }; status?: unknown }>('federations.fednano.io', {}).map(brief),
    'operator log:',
    operator.output.slice(-3000),
  ].join('\n');
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'fednano-operator-e2e-'));
  api = await startKubeApi({ crds: CRDS, deploymentController: true, schedulePods: true });
  kubeconfig = await api.writeKubeconfig(join(work, 'kubeconfig'));
  nats = await NatsServer.start();
  await writeFixtureShards(join(work, 'data'));
  const kc = new KubeConfig();
  kc.loadFromString(api.kubeconfig());
  custom = kc.makeApiClient(CustomObjectsApi);
  kubelet = edgeKubelet(kc, CLIENTS, {
    onLog: (pod, line) => {
      if (!podLogs.has(pod)) podLogs.set(pod, []);
      podLogs.get(pod)!.push(line);
    },
    rewriteArgs: (pod, args) => {
      const proxy = natsRoutes.get(pod.metadata?.name ?? '');
      const i = args.indexOf('--nats');
      return proxy && i >= 0 ? args.map((a, j) => (j === i + 1 ? `nats://${proxy.address}` : a)) : args;
    },
  });
  await kubelet.start();
  operatorOps = await freePort();
  operator = startOperator();
  await operator.waitReady(operatorOps);
  await apply(
    federationManifest({
      name: 'e2e',
      namespace: 'default',
      clients: CLIENTS,
      dataDir: join(work, 'data'),
      evaluation: true,
      strategy: '{ name: fisher }',
      training: '{ localSteps: 6, batchSize: 8, learningRate: 0.003, optimizer: adamw, fisherSamples: 16 }',
      participation: '{ clientsPerRound: 3, minClients: 2 }',
    }),
  );
});

after(async () => {
  await operator?.stop();
  await kubelet?.stop();
  await api?.close();
  await nats?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

test('apply Federation + FederationRound: the operator runs the round on the emulated cluster to Succeeded', async () => {
  await apply(`
apiVersion: fednano.io/v1alpha1
kind: FederationRound
metadata: { name: e2e-round-1, namespace: default }
spec: { federationRef: { name: e2e }, round: 1, deadlineSeconds: 300 }
`);
  const r = await until(
    'round 1 to succeed',
    () => round('e2e-round-1'),
    (x) => x.status?.phase === 'Succeeded',
  );
  assert.equal(r.status!.received, 3);
  assert.deepEqual(
    r.status!.clients!.map((c) => c.state),
    ['Counted', 'Counted', 'Counted'],
  );
  assert.match(r.status!.outputAdapter!.object, /^default\/e2e\/round-1$/);
  // The aggregator scored the round's adapter on the Federation's held-out shard (spec.evaluation), and it is the
  // score this test computes itself for that adapter on the fixture's test split.
  const m = r.status!.metrics!;
  const [own] = await scoreAdapters(nats.url, { rank: 8, alpha: 16 }, [r.status!.outputAdapter!]);
  assert.equal(m.accuracy, own!.accuracy);
  assert.equal(m.evaluatedExamples, own!.examples);
  assert.ok(Object.keys(m.accuracyByType ?? {}).length > 0, 'per question type');
  assert.equal(r.status!.conditions!.find((c) => c.type === 'Evaluated')?.reason, 'Evaluated');
  process.stderr.write(`round 1 on the emulated cluster: accuracy ${m.accuracy} on ${m.evaluatedExamples} questions\n`);
  if (hasKubectl) {
    const table = await kubectl('get', 'fr');
    assert.match(table, /NAME\s+FEDERATION\s+ROUND\s+PHASE\s+READY\s+EXPECTED\s+LOSS\s+ACCURACY/);
    assert.match(
      table,
      new RegExp(
        `e2e-round-1\\s+e2e\\s+1\\s+Succeeded\\s+3\\s+3\\s+\\S+\\s+${String(m.accuracy).replace('.', '\\.')}\\s`,
      ),
    );
    const describe = await kubectl('describe', 'fr', 'e2e-round-1');
    assert.match(describe, /RoundOpened/);
    assert.match(describe, /RoundSucceeded/);
  }
  const metrics = await httpText(`http://127.0.0.1:${operatorOps}/metrics`);
  assert.match(
    metrics,
    /fednano_operator_reconcile_duration_seconds_count\{controller="federationround",result="success"\} \d+/,
  );
});

test('client-agent pods killed (SIGKILL) mid-training and after publishing are retried: one counted update each', async () => {
  // client-0 is killed while training; client-1 right after its update was stored, before it learns so (the proxy on
  // its NATS link holds back the acknowledgement and kills the pod): its retry must not count a second update. The
  // aggregator is paused (SIGSTOP) from client-1's Fisher phase until that retry has finished, so that the retry
  // really runs and publishes again: had the aggregator counted the first update already, the operator would rightly
  // not retry a Counted client.
  const [training, published, untouched] = CLIENTS as [string, string, string];
  const proxy = await FaultProxy.start({ target: { host: '127.0.0.1', port: nats.port } });
  const firstPod = (client: string) => `e2e-round-2-${client}-0`;
  natsRoutes.set(firstPod(published), proxy);
  let killedAfterPublish = false;
  proxy.tap = (dir, chunk) => {
    if (killedAfterPublish || dir !== 'down' || !chunk.includes('"stream":"FEDNANO_UPDATES"')) return 'pass';
    killedAfterPublish = kubelet.signalPod('default', firstPod(published), 'SIGKILL');
    return 'cut';
  };
  const nc = await connectNats({ servers: nats.url, name: 'e2e-faults' });
  const aggregatorPod = kubelet.podNames('default', 'e2e-aggregator-')[0]!;
  let aggregatorPaused = false;
  let killedTraining = false;
  nc.subscribe('fednano.default.e2e.round.2.progress.*', {
    callback: (err, m) => {
      if (err) return;
      const p = m.json<{ client: string; phase: string; step?: number }>();
      if (!killedTraining && p.client === training && p.phase === 'training' && (p.step ?? 0) >= 2)
        killedTraining = kubelet.signalPod('default', firstPod(training), 'SIGKILL');
      if (!aggregatorPaused && p.client === published && p.phase === 'fisher')
        aggregatorPaused = kubelet.signalPod('default', aggregatorPod, 'SIGSTOP');
    },
  });
  try {
    await apply(`
apiVersion: fednano.io/v1alpha1
kind: FederationRound
metadata: { name: e2e-round-2, namespace: default }
spec: { federationRef: { name: e2e }, round: 2, deadlineSeconds: 300, maxRetries: 2 }
`);
    const phaseOf = (name: string) =>
      api
        .list<{ metadata?: { name?: string }; status?: { phase?: string } }>('pods', {})
        .find((p) => p.metadata?.name === name)?.status?.phase;
    await until(
      `the rerun of ${published} to finish while the aggregator is paused`,
      async () => phaseOf(`e2e-round-2-${published}-1`),
      (phase) => phase === 'Succeeded' || phase === 'Failed',
    );
    assert.ok(aggregatorPaused, 'the aggregator was paused before the first publish');
    kubelet.signalPod('default', aggregatorPod, 'SIGCONT');
    const r = await until(
      'round 2 to succeed',
      () => round('e2e-round-2'),
      (x) => x.status?.phase === 'Succeeded',
    );
    assert.ok(killedTraining, `${training} was killed mid-training`);
    assert.ok(killedAfterPublish, `${published} was killed after its update was stored`);
    assert.equal(r.status!.expected, 3);
    assert.equal(r.status!.received, 3, 'one counted update per client');
    const byName = new Map(r.status!.clients!.map((c) => [c.name, c]));
    for (const c of CLIENTS) assert.equal(byName.get(c)!.state, 'Counted', c);
    assert.equal(byName.get(training)!.restarts, 1, 'the pod killed mid-training was retried once');
    assert.equal(byName.get(published)!.restarts, 1, 'the pod killed after publishing was retried once');
    assert.equal(byName.get(untouched)!.restarts ?? 0, 0);
    const { kv } = await ensureStorage(nc);
    const doc = (await readRound(kv, { namespace: 'default', federation: 'e2e' }, 2))!.doc;
    assert.deepEqual(doc.status.accepted.map((a) => a.client).sort(), [...CLIENTS].sort(), 'each client accepted once');
    assert.equal(doc.status.duplicates, 0, 'the second publish was dropped by the stream, never delivered');
    assert.deepEqual(doc.status.rejected, []);
    // The first attempts died by SIGKILL; the retries finished.
    assert.equal(phaseOf(firstPod(training)), 'Failed');
    assert.equal(phaseOf(firstPod(published)), 'Failed');
    assert.equal(phaseOf(`e2e-round-2-${training}-1`), 'Succeeded');
    assert.equal(phaseOf(`e2e-round-2-${published}-1`), 'Succeeded');
    // The rerun trained and published again; the stream recognised the message id and acknowledged a duplicate.
    const rerun = (podLogs.get(`e2e-round-2-${published}-1`) ?? []).find((l) => l.includes('"update published"'));
    assert.match(rerun ?? '', /"duplicate":true/, 'the rerun published again and the stream dropped it');
    if (hasKubectl) assert.match(await kubectl('describe', 'fr', 'e2e-round-2'), /ClientRetried/);
  } finally {
    if (aggregatorPaused) kubelet.signalPod('default', aggregatorPod, 'SIGCONT');
    natsRoutes.clear();
    await nc.close();
    await proxy.close();
  }
});

test('an operator killed mid-round resumes it after a restart; deleting the round cleans up what it owned', async () => {
  await apply(`
apiVersion: fednano.io/v1alpha1
kind: FederationRound
metadata: { name: e2e-round-3, namespace: default }
spec: { federationRef: { name: e2e }, round: 3, deadlineSeconds: 300 }
`);
  await until(
    'round 3 pods',
    async () => kubelet.podNames('default', 'e2e-round-3-'),
    (names) => names.length === 3,
  );
  operator.signal('SIGKILL');
  await operator.exited;
  operator = startOperator();
  await operator.waitReady(operatorOps);
  const r = await until(
    'round 3 to succeed',
    () => round('e2e-round-3'),
    (x) => x.status?.phase === 'Succeeded',
  );
  assert.equal(r.status!.received, 3, 'every update counted once');
  const nc = await connectNats({ servers: nats.url, name: 'e2e-check' });
  try {
    const { kv } = await ensureStorage(nc);
    const f = { namespace: 'default', federation: 'e2e' };
    assert.equal((await readRound(kv, f, 3))?.doc.status.accepted.length, 3);
    await custom.deleteNamespacedCustomObject({
      group: 'fednano.io',
      version: 'v1alpha1',
      namespace: 'default',
      plural: 'federationrounds',
      name: 'e2e-round-3',
    });
    await until(
      'round 3 to be gone',
      () =>
        round('e2e-round-3').then(
          () => false,
          () => true,
        ),
      (gone) => gone,
      30_000,
    );
    await until(
      'its pods to be gone',
      async () => kubelet.podNames('default', 'e2e-round-3-').length,
      (n) => n === 0,
      30_000,
    );
    assert.equal(await readRound(kv, f, 3), undefined, 'the finalizer removed the round record from NATS');
  } finally {
    await nc.close();
  }
});
