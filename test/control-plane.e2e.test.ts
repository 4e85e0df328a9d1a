import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { writeShard } from '@fednano/data';
import { SERVICE_ENTRIES } from '@fednano/local-cluster';
import { loadModelFolder } from '@fednano/model';
import { NatsServer } from '@fednano/service-kit';
import { loadConfig, planFederation } from '@fednano/simulation';
import { connectNats, ensureStorage, readRound } from '@fednano/wire';
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, type V1Pod } from '@kubernetes/client-node';
import { ControlPlane, controlPlaneProblem } from './support/control-plane.js';
import { edgeKubelet, waitFor } from './support/emulated-federation.js';
import { buildAllImages, engineProblem } from './support/images.js';
import type { ProcessKubelet } from './support/process-kubelet.js';
import { scoreAdapters } from './support/round-accuracy.js';
import { toolPath, toolsProblem, toolVersions } from './support/tools.js';

/**
 * The real control plane: etcd, kube-apiserver, kube-controller-manager and kube-scheduler built from the pinned Go
 * modules (scripts/install-tools.sh), on loopback. Helm lints and installs charts/fednano; the project's kubelet
 * keeps a GPU node and three edge nodes alive and runs their Pods (the operator's too, with its chart ServiceAccount's
 * token); then the README's `kubectl apply -f examples/federation.yaml -f examples/round.yaml` runs to a Succeeded
 * round whose adapter is scored here. Also: RBAC as the chart grants it, CRD validation (CEL) by the real API
 * server, garbage collection of a deleted round's Pods, and leader handover when the active operator dies.
 */
const exec = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NAMESPACE = 'fednano-system';
const OPERATOR_SA = `system:serviceaccount:${NAMESPACE}:fednano`;
/** examples/federation.yaml's roster: client name -> its edge node; the data sits in /var/lib/fednano/<client>. */
const ROSTER = { 'hospital-a': 'edge-a', 'hospital-b': 'edge-b', 'clinic-c': 'edge-c' } as const;
const DATA_ROOT = '/var/lib/fednano';
/** examples/federation.yaml's spec.evaluation: the held-out shard (the fixture's test split). */
const HELD_OUT = join(DATA_ROOT, 'held-out');
const TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS ?? 600_000);

function whyNot(): string | undefined {
  if (process.env.FEDNANO_SKIP_CONTROL_PLANE) return 'FEDNANO_SKIP_CONTROL_PLANE is set';
  const tools = controlPlaneProblem() ?? toolsProblem(['helm', 'kubectl']);
  if (tools) return tools;
  try {
    mkdirSync(DATA_ROOT, { recursive: true });
    accessSync(DATA_ROOT, constants.W_OK);
  } catch {
    return `examples/federation.yaml mounts its clients' data from ${DATA_ROOT}, which this user cannot write`;
  }
  return undefined;
}
const skip = whyNot();
/**
 * Pods run as containers from the project's images where a container engine is usable (the kubelet runs them
 * through Docker), as local processes of the same entry points otherwise.
 */
const engine = skip ? 'not needed' : await engineProblem();
const RUNTIME: 'docker' | 'process' = engine ? 'process' : 'docker';
if (!skip)
  process.stderr.write(
    engine
      ? `\n*** test/control-plane.e2e.test.ts runs Pods as processes: ${engine} ***\n\n`
      : '\ntest/control-plane.e2e.test.ts runs Pods as containers from the images in docker/\n',
  );
if (skip)
  process.stderr.write(
    `\n*** SKIPPED test/control-plane.e2e.test.ts: ${skip}. This suite runs the chart, the operator and a round on a real kube-apiserver. ***\n\n`,
  );

describe('real control plane: helm install, the operator, a round from examples/', {
  skip: skip ? `SKIPPED: ${skip}` : false,
  timeout: 25 * 60_000,
}, () => {
  let cp: ControlPlane;
  let nats: NatsServer;
  let kubelet: ProcessKubelet;
  let work: string;
  let core: CoreV1Api;
  let custom: CustomObjectsApi;
  const podLogs: string[] = [];

  const kubectl = async (...args: string[]) =>
    (await exec(toolPath('kubectl'), ['--kubeconfig', cp.kubeconfigPath, ...args], { encoding: 'utf8' })).stdout;
  /** kubectl that is expected to fail: its stderr. */
  const kubectlFails = async (...args: string[]) => {
    try {
      await kubectl(...args);
    } catch (e) {
      return String((e as { stderr?: string }).stderr);
    }
    assert.fail(`kubectl ${args.join(' ')} succeeded`);
  };
  const helm = async (...args: string[]) =>
    (await exec(toolPath('helm'), ['--kubeconfig', cp.kubeconfigPath, ...args], { encoding: 'utf8' })).stdout;
  const pods = async (namespace: string, selector?: string) =>
    (await core.listNamespacedPod({ namespace, labelSelector: selector })).items;
  const state = () => `${cp.crashed() ?? ''}\n${cp.logs(600)}\npod logs:\n${podLogs.slice(-40).join('\n')}`;
  const until = <T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, ms = TIMEOUT_MS) =>
    waitFor(what, get, ok, ms, state);

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'fednano-control-plane-e2e-'));
    if (RUNTIME === 'docker') await buildAllImages(); // tag 0.1.0: the chart's default
    cp = await ControlPlane.start();
    process.stderr.write(`control plane ${JSON.stringify(toolVersions())} at ${cp.server}\n`);
    nats = await NatsServer.start();
    core = cp.kubeConfig().makeApiClient(CoreV1Api);
    custom = cp.kubeConfig().makeApiClient(CustomObjectsApi);
    // Each client's shard where examples/federation.yaml's hostPath volumes point (clients 0-2 of the e2e fixture).
    const config = await loadConfig(join(ROOT, 'test/fixtures/e2e-small.yaml'));
    const folder = await loadModelFolder(join(ROOT, config.spec.model.path));
    const plan = await planFederation(config, folder.manifest.recipe.seed);
    for (const [i, name] of Object.keys(ROSTER).entries())
      await writeShard(join(DATA_ROOT, name), plan.sets, plan.clients[i]!.questions);
    await writeShard(HELD_OUT, plan.sets, plan.test);
    kubelet = edgeKubelet(cp.kubeConfig(), [], {
      runtime: RUNTIME,
      images: {
        'fednano/operator': join(ROOT, 'operator/bin/operator.mjs'),
        'fednano/llm-host': SERVICE_ENTRIES.llmHost,
        'fednano/aggregator': SERVICE_ENTRIES.aggregator,
        'fednano/client-agent': SERVICE_ENTRIES.clientAgent,
      },
      onLog: (pod, line) => podLogs.push(`${pod}: ${line}`),
      nodes: [
        {
          name: 'gpu-0',
          labels: { 'nvidia.com/gpu.present': 'true' },
          capacity: { 'nvidia.com/gpu': '1' },
          taints: [{ key: 'nvidia.com/gpu', value: 'present', effect: 'NoSchedule' }],
        },
        { name: 'infra-0', labels: {} },
        ...Object.values(ROSTER).map((name) => ({ name, labels: {} })),
      ],
      // gpu-0 advertises an nvidia.com/gpu for the scheduler, but this machine has no GPU: the llm-host that the
      // example asks to run on CUDA (gpus: 1) runs on ONNX Runtime's CPU provider instead, and says so.
      rewriteArgs: (pod, args) => {
        const i = args.indexOf('--execution-provider');
        if (i < 0 || args[i + 1] !== 'cuda') return args;
        process.stderr.write(
          `${pod.metadata?.name} on ${pod.spec?.nodeName}: CUDA requested, CPU used (no GPU here)\n`,
        );
        return args.map((a, j) => (j === i + 1 ? 'cpu' : a));
      },
    });
    await kubelet.start();
  });

  after(async () => {
    await kubelet?.stop();
    await nats?.stop();
    await cp?.stop();
    for (const name of Object.keys(ROSTER)) await rm(join(DATA_ROOT, name), { recursive: true, force: true });
    await rm(HELD_OUT, { recursive: true, force: true });
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('helm lint, then helm install: CRDs, RBAC, ServiceAccount and two operator replicas Available', async () => {
    const lint = await helm('lint', '--strict', join(ROOT, 'charts/fednano'));
    assert.match(lint, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    await helm(
      'install',
      'fednano',
      join(ROOT, 'charts/fednano'),
      '--namespace',
      NAMESPACE,
      '--create-namespace',
      '--set',
      `nats.url=${nats.url}`,
      '--set',
      'replicas=2',
      '--wait',
      '--timeout',
      '5m',
    );
    const crds = await kubectl('get', 'crd', '-o', 'name');
    assert.match(crds, /federations\.fednano\.io/);
    assert.match(crds, /federationrounds\.fednano\.io/);
    assert.match(await kubectl('get', 'clusterrole,clusterrolebinding', '-o', 'name'), /clusterrole.*\/fednano/);
    assert.match(await kubectl('-n', NAMESPACE, 'get', 'serviceaccount', 'fednano', '-o', 'name'), /fednano/);
    const deploy = JSON.parse(await kubectl('-n', NAMESPACE, 'get', 'deployment', 'fednano', '-o', 'json'));
    assert.equal(deploy.status.availableReplicas, 2, JSON.stringify(deploy.status));
    // The operator Pods run with the chart's ServiceAccount, and the scheduler kept them off the tainted GPU node.
    for (const p of await pods(NAMESPACE)) {
      assert.equal(p.spec?.serviceAccountName, 'fednano');
      assert.notEqual(p.spec?.nodeName, 'gpu-0');
    }
  });

  test('kubectl auth can-i: the operator ServiceAccount can do what it needs and nothing more', async () => {
    const can = async (...args: string[]) => {
      try {
        return (await kubectl('auth', 'can-i', `--as=${OPERATOR_SA}`, ...args)).trim();
      } catch (e) {
        return String((e as { stdout?: string }).stdout).trim(); // `no` exits 1
      }
    };
    for (const allowed of [
      ['create', 'pods', '-n', 'default'],
      ['delete', 'pods', '-n', 'default'],
      ['create', 'deployments.apps', '-n', 'default'],
      ['patch', 'federationrounds.fednano.io', '--subresource=status', '-n', 'default'],
      ['create', 'federationrounds.fednano.io', '-n', 'default'],
      ['update', 'leases.coordination.k8s.io', '-n', NAMESPACE],
    ])
      assert.equal(await can(...allowed), 'yes', `can-i ${allowed.join(' ')}`);
    for (const denied of [
      ['update', 'pods', '-n', 'default'],
      ['create', 'pods', '--subresource=exec', '-n', 'default'],
      ['create', 'federations.fednano.io', '-n', 'default'],
      ['delete', 'federations.fednano.io', '-n', 'default'],
      ['update', 'leases.coordination.k8s.io', '-n', 'default'],
      ['get', 'nodes'],
      ['create', 'clusterrolebindings.rbac.authorization.k8s.io'],
      ['create', 'serviceaccounts', '--subresource=token', '-n', NAMESPACE],
      ['delete', 'customresourcedefinitions.apiextensions.k8s.io'],
    ])
      assert.equal(await can(...denied), 'no', `can-i ${denied.join(' ')}`);
  });

  test('a malformed Federation is refused by the API server (OpenAPI schema and CEL) and nothing is stored', async () => {
    const file = join(work, 'bad.yaml');
    const federation = (spec: string) => `apiVersion: fednano.io/v1alpha1
kind: Federation
metadata: { name: bad, namespace: default }
spec:
  model: { path: models/reference }
  clients: [{ name: a, dataVolume: { hostPath: { path: /var/lib/fednano/a } } }]
  strategy: { name: fisher }
  training: { localSteps: 4, batchSize: 8, learningRate: 0.003, optimizer: adamw }
${spec}`;
    await writeFile(file, federation('  participation: { clientsPerRound: 3 }\n  adapter: { rank: 8, alpha: 16 }\n'));
    assert.match(await kubectlFails('apply', '-f', file), /clientsPerRound/);
    await writeFile(file, federation('  adapter: { rank: sixteen, alpha: 16 }\n'));
    assert.match(await kubectlFails('apply', '-f', file), /spec\.adapter\.rank.*(integer|Invalid value)/);
    assert.match(await kubectlFails('get', 'federation', 'bad'), /NotFound|not found/);
  });

  test('kubectl apply -f examples/federation.yaml -f examples/round.yaml: placed by the scheduler, the round Succeeds', async () => {
    await kubectl('apply', '-f', join(ROOT, 'examples/federation.yaml'), '-f', join(ROOT, 'examples/round.yaml'));
    // The real scheduler: the llm-host (1 nvidia.com/gpu, the GPU toleration) on gpu-0, each client on its edge node.
    const placed = (p: V1Pod[]) => p.every((x) => x.spec?.nodeName);
    const llmHost = await until(
      'the llm-host Pod to be scheduled',
      () => pods('default', 'app.kubernetes.io/name=fednano-llm-host'),
      (p) => p.length === 1 && placed(p),
    );
    assert.equal(llmHost[0]!.spec!.nodeName, 'gpu-0');
    assert.equal(llmHost[0]!.spec!.containers[0]!.resources?.limits?.['nvidia.com/gpu'], '1');
    // One client-agent per participant, each on its own edge node (nodeSelector from the roster).
    const agents = await until(
      'the client-agent Pods to be scheduled',
      () => pods('default', 'app.kubernetes.io/name=fednano-client-agent'),
      (p) => p.length === 3 && placed(p),
    );
    for (const p of agents) {
      const client = p.metadata?.labels?.['fednano.io/client'] as keyof typeof ROSTER;
      assert.equal(p.spec?.nodeName, ROSTER[client], `${p.metadata?.name} on ${p.spec?.nodeName}`);
    }
    await kubectl('wait', '--for=condition=Succeeded', 'fr/vqa-round-1', `--timeout=${TIMEOUT_MS / 1000}s`);
    // Where the engine is, the llm-host ran as a container of fednano/llm-host:0.1.0.
    const [host] = await pods('default', 'app.kubernetes.io/name=fednano-llm-host');
    const id = host?.status?.containerStatuses?.[0]?.containerID ?? '';
    assert.match(id, RUNTIME === 'docker' ? /^docker:\/\/[0-9a-f]{64}$/ : /^process:\/\//);
    const round = (await custom.getNamespacedCustomObject({
      group: 'fednano.io',
      version: 'v1alpha1',
      namespace: 'default',
      plural: 'federationrounds',
      name: 'vqa-round-1',
    })) as {
      status: {
        received: number;
        outputAdapter: { object: string; sha256: string };
        metrics: { accuracy?: number; evaluatedExamples?: number };
        conditions: { type: string; reason?: string; message?: string }[];
      };
    };
    assert.ok(round.status.received >= 2);
    // The aggregator scored the adapter it produced on the held-out shard (spec.evaluation), as the round-0 adapter
    // it started from; the same scores this test computes itself for those adapters on the fixture's test split.
    const nc = await connectNats({ servers: nats.url, name: 'e2e' });
    const { kv } = await ensureStorage(nc);
    const zero = await readRound(kv, { namespace: 'default', federation: 'vqa' }, 0);
    await nc.drain();
    const [before, own] = await scoreAdapters(nats.url, { rank: 16, alpha: 32 }, [
      zero!.doc.status.result!,
      round.status.outputAdapter,
    ]);
    const evaluated = round.status.conditions.find((c) => c.type === 'Evaluated');
    assert.equal(evaluated?.reason, 'Evaluated', JSON.stringify(evaluated));
    const accuracy = round.status.metrics.accuracy!;
    assert.equal(accuracy, own!.accuracy);
    assert.equal(round.status.metrics.evaluatedExamples, own!.examples);
    assert.equal(
      zero!.doc.status.evaluation?.accuracy,
      before!.accuracy,
      "round 0's record scores the initial adapter",
    );
    process.stderr.write(
      `round 1 on the real control plane: accuracy ${(100 * before!.accuracy).toFixed(1)}% -> ${(100 * accuracy).toFixed(1)}% on ${own!.examples} held-out questions\n`,
    );

    const table = await kubectl('get', 'fed,fr');
    assert.match(table, /federation\.fednano\.io\/vqa/);
    assert.match(table, /federationround\.fednano\.io\/vqa-round-1\s+vqa\s+1\s+Succeeded/);
    // ACCURACY beside LOSS in kubectl get fr, and the Federation's current accuracy in kubectl get fed.
    assert.match(table, /LOSS\s+ACCURACY/);
    const cell = String(accuracy).replace('.', '\\.');
    assert.match(table, new RegExp(`vqa-round-1\\s+vqa\\s+1\\s+Succeeded\\s+\\d+\\s+\\d+\\s+\\S+\\s+${cell}\\s`));
    const fedRow = new RegExp(`\\s${cell}\\s`);
    await until(
      'kubectl get fed to show the accuracy',
      () => kubectl('get', 'fed', 'vqa'),
      (t) => fedRow.test(t),
    );
    const describe = await kubectl('describe', 'fr', 'vqa-round-1');
    assert.match(describe, /RoundSucceeded/);
  });

  test('deleting the round: the garbage collector removes its client-agent Pods', async () => {
    // The operator deletes only the round's still-running Pods when it ends; the finished ones are left to the
    // garbage collector, through their ownerReferences to the round.
    const left = await pods('default', 'app.kubernetes.io/name=fednano-client-agent');
    assert.ok(left.length > 0, 'no finished client-agent Pod left to collect');
    for (const p of left) assert.equal(p.metadata?.ownerReferences?.[0]?.kind, 'FederationRound');
    await kubectl('delete', 'fr', 'vqa-round-1', '--wait=true', '--timeout=120s');
    await until(
      'the round Pods to be garbage-collected',
      () => pods('default', 'app.kubernetes.io/name=fednano-client-agent'),
      (p) => p.length === 0,
      180_000,
    );
  });

  test('the active operator dies: the standby takes over the Lease', async () => {
    const leases = cp.kubeConfig().makeApiClient(CoordinationV1Api);
    const lease = () => leases.readNamespacedLease({ namespace: NAMESPACE, name: 'fednano-operator' });
    const held = await until('a leader', lease, (l) => Boolean(l.spec?.holderIdentity));
    const leader = held.spec!.holderIdentity!;
    // The chart names each replica's Pod in its identity (FEDNANO_POD_NAME from the downward API).
    const leaderPod = (await pods(NAMESPACE)).find((p) => leader.startsWith(`${p.metadata!.name!}_`));
    assert.ok(leaderPod, `no operator Pod matches the Lease holder ${leader}`);
    // A crash, not a shutdown: SIGKILL leaves the Lease held until it expires; deleting the Pod keeps the kubelet
    // from restarting it, and the ReplicaSet makes a new one.
    assert.ok(kubelet.signalPod(NAMESPACE, leaderPod.metadata!.name!, 'SIGKILL'));
    await core.deleteNamespacedPod({ namespace: NAMESPACE, name: leaderPod.metadata!.name!, gracePeriodSeconds: 0 });
    const next = await until('another leader', lease, (l) => (l.spec?.holderIdentity ?? leader) !== leader, 120_000);
    assert.ok(!next.spec!.holderIdentity!.startsWith(`${leaderPod.metadata!.name!}_`));
    assert.ok((next.spec!.leaseTransitions ?? 0) >= 1);
  });
});
