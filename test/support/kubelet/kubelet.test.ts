import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CoordinationV1Api,
  CoreV1Api,
  type KubeConfig,
  RbacAuthorizationV1Api,
  type V1Pod,
} from '@kubernetes/client-node';
import { ControlPlane, controlPlaneProblem } from '../control-plane.js';
import { startKubeApi } from '../kube-api/index.js';
import { ProcessKubelet, type ProcessKubeletOptions } from '../process-kubelet.js';
import { DockerRuntime } from './docker-runtime.js';
import { expand } from './env.js';
import { podField } from './fields.js';
import { nodeKubeConfig } from './identity.js';
import { nodeStatus } from './nodes.js';
import type { ContainerLaunch } from './runtime.js';
import { mapOwnPort } from './runtime.js';

/**
 * The kubelet against both API servers: the emulated one (always) and a real control plane (where the tools are
 * built): node registration and heartbeat, a pod's env, volumes, probes, restarts and status, graceful deletion; on
 * the real one also the projected ServiceAccount token with RBAC, through the KUBECONFIG the kubelet writes.
 */
const APP = fileURLToPath(new URL('./fixtures/app.mjs', import.meta.url));

async function until<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: T | undefined;
  let error = '';
  while (Date.now() < deadline) {
    try {
      last = await get();
      if (ok(last)) return last;
    } catch (e) {
      error = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}: ${JSON.stringify(last)?.slice(0, 1500)} ${error.slice(0, 300)}`);
}

function scenario(
  name: string,
  open: () => Promise<{ kc: KubeConfig; real: boolean; close: () => Promise<void> }>,
  extra: Partial<ProcessKubeletOptions> = {},
) {
  describe(name, { timeout: 180_000 }, () => {
    let kc: KubeConfig;
    let real = false;
    let close: () => Promise<void>;
    let kubelet: ProcessKubelet;
    let core: CoreV1Api;
    const logs: string[] = [];
    const ns = 'kubelet-test';

    before(async () => {
      ({ kc, real, close } = await open());
      core = kc.makeApiClient(CoreV1Api);
      kubelet = new ProcessKubelet(kc, {
        nodes: [
          {
            name: 'gpu-0',
            labels: { 'nvidia.com/gpu.present': 'true' },
            capacity: { 'nvidia.com/gpu': '1' },
            taints: [{ key: 'nvidia.com/gpu', value: 'present', effect: 'NoSchedule' }],
          },
          { name: 'edge-a', labels: { zone: 'a' } },
        ],
        images: { 'test/app': APP },
        onLog: (pod, line) => logs.push(`${pod} ${line}`),
        ...extra,
      });
      await kubelet.start();
      await core.createNamespace({ body: { metadata: { name: ns } } });
      await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'cfg' }, data: { k: 'v-cm' } } });
      await core.createNamespacedSecret({
        namespace: ns,
        body: { metadata: { name: 'sec' }, stringData: { s: 'v-sec' } },
      });
    });

    after(async () => {
      await kubelet?.stop();
      await close?.();
    });

    test('nodes: labels, taints, capacity, Ready with a heartbeat, a Lease in kube-node-lease', async () => {
      // node-lifecycle taints a node not-ready until it sees it Ready: it must not stay (or come back).
      const gpu = await until(
        'gpu-0 without not-ready taints',
        () => core.readNode({ name: 'gpu-0' }),
        (n) => !n.spec?.taints?.some((t) => t.key.startsWith('node.kubernetes.io/')),
      );
      assert.equal(gpu.metadata?.labels?.['kubernetes.io/hostname'], 'gpu-0');
      assert.equal(gpu.metadata?.labels?.['kubernetes.io/os'], 'linux');
      assert.ok(gpu.metadata?.labels?.['kubernetes.io/arch']);
      assert.deepEqual(
        gpu.spec?.taints?.map((t) => `${t.key}=${t.value}:${t.effect}`),
        ['nvidia.com/gpu=present:NoSchedule'],
      );
      assert.equal(gpu.status?.allocatable?.['nvidia.com/gpu'], '1');
      assert.ok(gpu.status?.capacity?.cpu && gpu.status.capacity.memory && gpu.status.capacity.pods);
      const ready = gpu.status?.conditions?.find((c) => c.type === 'Ready');
      assert.equal(ready?.status, 'True');
      assert.equal(gpu.status?.conditions?.find((c) => c.type === 'MemoryPressure')?.status, 'False');
      assert.match(gpu.status?.nodeInfo?.kubeletVersion ?? '', /^v1\.\d+\.\d+$/);
      assert.deepEqual(
        gpu.status?.addresses?.map((a) => a.type),
        ['InternalIP', 'Hostname'],
      );
      const edge = await until(
        'edge-a without not-ready taints',
        () => core.readNode({ name: 'edge-a' }),
        (n) => !n.spec?.taints?.some((t) => t.key.startsWith('node.kubernetes.io/')),
      );
      assert.equal(edge.metadata?.labels?.zone, 'a');
      assert.equal(edge.spec?.taints, undefined);
      const lease = await kc
        .makeApiClient(CoordinationV1Api)
        .readNamespacedLease({ namespace: 'kube-node-lease', name: 'edge-a' });
      assert.equal(lease.spec?.holderIdentity, 'edge-a');
      assert.equal(lease.spec?.leaseDurationSeconds, 40);
    });

    test('a pod: env valueFrom, configMap and secret volumes, readiness on a named port, status, restart, graceful delete', async () => {
      const pod: V1Pod = {
        metadata: { name: 'app', namespace: ns, labels: { app: 'a' } },
        spec: {
          nodeName: 'edge-a',
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 5,
          containers: [
            {
              name: 'app',
              image: 'test/app:1',
              args: ['--file', '/etc/cfg/k'],
              ports: [{ name: 'http', containerPort: 8080 }],
              env: [
                { name: 'APP_PORT', value: '8080' },
                { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                { name: 'FROM_CM', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'k' } } },
                { name: 'FROM_SECRET', valueFrom: { secretKeyRef: { name: 'sec', key: 's' } } },
              ],
              volumeMounts: [
                { name: 'cfg', mountPath: '/etc/cfg' },
                { name: 'sec', mountPath: '/etc/sec' },
              ],
              readinessProbe: { httpGet: { path: '/readyz', port: 'http' as never }, periodSeconds: 1 },
            },
          ],
          volumes: [
            { name: 'cfg', configMap: { name: 'cfg' } },
            { name: 'sec', secret: { secretName: 'sec' } },
          ],
        },
      };
      await core.createNamespacedPod({ namespace: ns, body: pod });
      const read = () => core.readNamespacedPod({ namespace: ns, name: 'app' });
      const running = await until('the pod Ready', read, (p) =>
        Boolean(p.status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True')),
      );
      const s = running.status!;
      assert.equal(s.phase, 'Running');
      assert.deepEqual(s.conditions?.map((c) => `${c.type}=${c.status}`).sort(), [
        'ContainersReady=True',
        'Initialized=True',
        'PodScheduled=True',
        'Ready=True',
      ]);
      assert.equal(s.podIP, '127.0.0.1');
      assert.ok(s.startTime);
      const c = s.containerStatuses![0]!;
      assert.equal(c.ready, true);
      assert.equal(c.started, true);
      assert.match(c.containerID ?? '', /^process:\/\/\d+$/);
      assert.ok(c.state?.running?.startedAt);
      assert.ok(logs.includes('app env POD_NAME=app FROM_CM=v-cm FROM_SECRET=v-sec'), logs.join('\n'));
      assert.ok(logs.includes('app file v-cm'), logs.join('\n'));
      if (real) {
        // kubectl logs: the API server proxies pods/log to the kubelet's server.
        const log = await core.readNamespacedPodLog({ namespace: ns, name: 'app', tailLines: 5 });
        assert.match(log, /^env POD_NAME=app FROM_CM=v-cm FROM_SECRET=v-sec$/m);
      }

      assert.ok(kubelet.signalPod(ns, 'app', 'SIGKILL'));
      const restarted = await until('the restart', read, (p) => {
        const cs = p.status?.containerStatuses?.[0];
        return cs?.restartCount === 1 && cs.ready === true;
      });
      assert.equal(restarted.status!.containerStatuses![0]!.lastState?.terminated?.exitCode, 137);

      await core.deleteNamespacedPod({ namespace: ns, name: 'app' });
      await until(
        'the pod deleted',
        () =>
          read().then(
            () => false,
            (e) => (e as { code?: number }).code === 404,
          ),
        (gone) => gone,
      );
      assert.ok(logs.includes('app got SIGTERM'), logs.join('\n'));
      // The kubelet's Events, for kubectl describe.
      const events = await until(
        'the pod Events',
        async () =>
          (await core.listNamespacedEvent({ namespace: ns })).items.filter((e) => e.involvedObject.name === 'app'),
        (e) => e.some((x) => x.reason === 'Killing'),
      );
      const reasons = new Set(events.map((e) => e.reason));
      for (const r of ['Pulled', 'Created', 'Started', 'BackOff', 'Killing'])
        assert.ok(reasons.has(r), `${r} in ${[...reasons]}`);
      assert.equal(events.find((e) => e.reason === 'Started')?.source?.host, 'edge-a');
    });

    test('a run-to-completion pod (restartPolicy Never) ends Succeeded with its exit in the container status', async () => {
      await core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name: 'once', namespace: ns },
          spec: {
            nodeName: 'edge-a',
            restartPolicy: 'Never',
            automountServiceAccountToken: false,
            containers: [{ name: 'once', image: 'test/app', args: ['--file', '/nonexistent'] }],
          },
        },
      });
      const done = await until(
        'the pod to finish',
        () => core.readNamespacedPod({ namespace: ns, name: 'once' }),
        (p) => p.status?.phase === 'Failed' || p.status?.phase === 'Succeeded',
      );
      assert.equal(done.status?.phase, 'Failed');
      const t = done.status?.containerStatuses?.[0]?.state?.terminated;
      assert.equal(t?.exitCode, 1);
      assert.match(t?.message ?? '', /ENOENT/);
      await core.deleteNamespacedPod({ namespace: ns, name: 'once' });
    });

    test('real API server: the ServiceAccount token (TokenRequest, projected) gives the process its RBAC', async (t) => {
      if (!real) return t.skip('the emulated API server has no ServiceAccount admission or TokenRequest');
      const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
      await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'reader' } } });
      await rbac.createNamespacedRole({
        namespace: ns,
        body: { metadata: { name: 'reader' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['list'] }] },
      });
      await rbac.createNamespacedRoleBinding({
        namespace: ns,
        body: {
          metadata: { name: 'reader' },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'reader' },
          subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: ns }],
        },
      });
      await core.createNamespacedPod({
        namespace: ns,
        body: {
          metadata: { name: 'sa', namespace: ns },
          spec: {
            nodeName: 'edge-a',
            serviceAccountName: 'reader',
            containers: [
              {
                name: 'sa',
                image: 'test/app',
                env: [
                  { name: 'APP_PORT', value: '0' },
                  { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                ],
              },
            ],
          },
        },
      });
      await until(
        'the pod to use its token',
        async () => logs.filter((l) => l.startsWith('sa ')),
        (l) => l.some((x) => x.includes('cannot list secrets')),
      );
      assert.ok(
        logs.some((l) => /^sa can list pods: \d+$/.test(l)),
        logs.join('\n'),
      );
      assert.ok(logs.includes('sa cannot list secrets: 403'), logs.join('\n'));
      const p = await core.readNamespacedPod({ namespace: ns, name: 'sa' });
      assert.ok(p.spec?.volumes?.some((v) => v.name.startsWith('kube-api-access-')));
      await core.deleteNamespacedPod({ namespace: ns, name: 'sa' });
      assert.equal(kubelet.nodeError, undefined);
    });
  });
}

scenario('process kubelet on the emulated API server', async () => {
  const api = await startKubeApi({ podGracefulDeletion: true, strictMicroTime: true });
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  kc.loadFromString(api.kubeconfig());
  return { kc, real: false, close: () => api.close() };
});

const problem = process.env.FEDNANO_SKIP_CONTROL_PLANE ? 'FEDNANO_SKIP_CONTROL_PLANE is set' : controlPlaneProblem();
if (problem) {
  describe('process kubelet on a real control plane', { skip: `SKIPPED: ${problem}` }, () => {});
} else {
  scenario('process kubelet on a real control plane', async () => {
    // The kubelet's server (kubectl logs) is reached at the InternalIP: the Hostname address (the node name) does not resolve.
    const cp = await ControlPlane.start({ apiServerFlags: ['--kubelet-preferred-address-types=InternalIP'] });
    return { kc: cp.kubeConfig(), real: true, close: () => cp.stop() };
  });
  scenario(
    'process kubelet on a real control plane as system:node:<name> (Node authorizer, NodeRestriction)',
    async () => {
      const cp = await ControlPlane.start({ apiServerFlags: ['--kubelet-preferred-address-types=InternalIP'] });
      const kc = cp.kubeConfig();
      // The identity the kubelet bootstraps is a node's: it may not read a Secret none of its pods uses.
      const core = kc.makeApiClient(CoreV1Api);
      await core.createNamespacedSecret({
        namespace: 'default',
        body: { metadata: { name: 'unrelated' }, stringData: { a: 'b' } },
      });
      const node = (await nodeKubeConfig(kc, 'probe-node')).makeApiClient(CoreV1Api);
      await assert.rejects(
        node.readNamespacedSecret({ namespace: 'default', name: 'unrelated' }),
        (e: { code?: number }) => e.code === 403,
      );
      return { kc, real: true, close: () => cp.stop() };
    },
    { identity: 'node' },
  );
}

describe('kubelet pieces', () => {
  test('$(VAR) expansion: defined variables, $$ escapes, unknown references kept', () => {
    assert.equal(expand('a-$(X)-$(Y)-$$(X)', { X: '1' }), 'a-1-$(Y)-$(X)');
  });

  test('own ports: --port N, --x-port=N and *_PORT values map to the host port', () => {
    const ports = new Map([[8080, 31000]]);
    assert.equal(mapOwnPort('8080', '--port', ports), '31000');
    assert.equal(mapOwnPort('--metrics-port=8080', '', ports), '--metrics-port=31000');
    assert.equal(mapOwnPort('8080', 'FEDNANO_OPS_PORT', ports), '31000');
    assert.equal(mapOwnPort('8080', '--replicas', ports), '8080');
    assert.equal(mapOwnPort('9090', '--port', ports), '9090');
  });

  test('downward API fields', () => {
    const pod: V1Pod = {
      metadata: { name: 'p', namespace: 'n', labels: { b: '2', a: '1' } },
      spec: { nodeName: 'x', containers: [] },
    };
    assert.equal(podField(pod, 'metadata.namespace'), 'n');
    assert.equal(podField(pod, "metadata.labels['a']"), '1');
    assert.equal(podField(pod, 'metadata.labels'), 'a="1"\nb="2"');
    assert.equal(podField(pod, 'spec.nodeName'), 'x');
    assert.equal(podField(pod, 'status.nope'), undefined);
  });

  test('node status: Ready and no pressure, heartbeat now, transition at registration', () => {
    const since = new Date(1000);
    const now = new Date(2000);
    const s = nodeStatus(
      { name: 'n', labels: {}, capacity: { 'nvidia.com/gpu': '2' } },
      { address: '127.0.0.1', kubeletVersion: 'v1.36.3', runtimeVersion: 'process://x', since, now },
    );
    assert.equal(s.allocatable?.['nvidia.com/gpu'], '2');
    for (const c of s.conditions ?? []) {
      assert.equal(c.status, c.type === 'Ready' ? 'True' : 'False');
      assert.equal(c.lastHeartbeatTime, now);
      assert.equal(c.lastTransitionTime, since);
    }
  });

  test('docker run flags: published ports, bind mounts, securityContext, image and args; loopback forwarders', async () => {
    const rt = new DockerRuntime({ hostAddress: '127.0.0.1' });
    await rt.hostAddress();
    const l = {
      pod: {
        metadata: { name: 'p', namespace: 'n', uid: 'abcdef0123' },
        spec: { securityContext: { runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532 }, containers: [] },
      },
      container: {
        name: 'c',
        image: 'fednano/operator:0.1.0',
        securityContext: {
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ['ALL'] },
        },
      },
      args: ['--x', '1'],
      env: { A: 'b' },
      mounts: new Map([['/tmp', { host: '/h/tmp', readOnly: false }]]),
      ports: new Map([[8080, 31000]]),
      attempt: 0,
    } as unknown as ContainerLaunch;
    const args = rt.runArgs(l);
    const s = args.join(' ');
    assert.match(s, /--publish 127\.0\.0\.1:31000:8080/);
    assert.match(s, /--volume \/h\/tmp:\/tmp /);
    assert.match(s, /--read-only/);
    assert.match(s, /--user 65532:65532/);
    assert.match(s, /--cap-drop ALL/);
    assert.match(s, /--env A=b/);
    assert.deepEqual(args.slice(-3), ['fednano/operator:0.1.0', '--x', '1']);
    // A host service on loopback: reached through a forwarder on the gateway (here loopback itself).
    const withServices = { ...l, resolveServices: (v: string) => v } as ContainerLaunch;
    await rt.prepare(withServices, ['nats://127.0.0.1:4222']);
    const rewritten = rt.rewrite('nats://127.0.0.1:4222', '', withServices);
    assert.match(rewritten, /^nats:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(rewritten, 'nats://127.0.0.1:4222');
    assert.equal(rt.rewrite('--x=localhost:9', '', withServices), '--x=localhost:9', 'not prepared: unchanged');
    rt.close();
  });
});
