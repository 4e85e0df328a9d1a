import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { httpStatus } from '@fednano/service-kit';
import { CoreV1Api, RbacAuthorizationV1Api, type V1Pod } from '@kubernetes/client-node';
import { ControlPlane, controlPlaneProblem } from '../control-plane.js';
import { imageRef } from '../images.js';
import { ProcessKubelet } from '../process-kubelet.js';

/**
 * The kubelet's container mode on a real control plane: the project's images run through the Docker Engine as the
 * Pods describe them (read-only root, non-root user, ports published, volumes bind-mounted), reached through
 * kube-proxy, and a container using the in-cluster config (the projected ServiceAccount token at
 * /var/run/secrets/kubernetes.io/serviceaccount, KUBERNETES_SERVICE_HOST/PORT) gets exactly its account's RBAC.
 * Uses the images test/images.e2e.test.ts builds; skips when they or the engine are missing.
 */
const exec = promisify(execFile);
const LLM_HOST = imageRef('llm-host');
const OPERATOR = imageRef('operator');

async function whyNot(): Promise<string | undefined> {
  if (process.env.FEDNANO_SKIP_CONTROL_PLANE) return 'FEDNANO_SKIP_CONTROL_PLANE is set';
  const cp = controlPlaneProblem();
  if (cp) return cp;
  try {
    await exec('docker', ['version', '--format', '{{.Server.Version}}']);
  } catch {
    return 'no Docker Engine answers (docker version)';
  }
  for (const image of [LLM_HOST, OPERATOR])
    try {
      await exec('docker', ['image', 'inspect', image]);
    } catch {
      return `image ${image} is not built (node --import tsx --test test/images.e2e.test.ts builds it)`;
    }
  return undefined;
}

async function until<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, ms = 90_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await get().catch(() => last);
    if (last !== undefined && ok(last)) return last;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`timed out waiting for ${what}: ${JSON.stringify(last)?.slice(0, 1500)}`);
}

const skip = await whyNot();
if (skip) process.stderr.write(`\n*** SKIPPED test/support/kubelet/docker.test.ts: ${skip} ***\n\n`);

describe('kubelet container mode (Docker Engine) on a real control plane', {
  skip: skip ? `SKIPPED: ${skip}` : false,
  timeout: 300_000,
}, () => {
  let cp: ControlPlane;
  let kubelet: ProcessKubelet;
  let core: CoreV1Api;
  const logs: string[] = [];
  const ns = 'kubelet-docker';

  before(async () => {
    // The API server on loopback only, as for the process kubelet: containers reach it through the kubelet's
    // forwarder on the bridge gateway, by the name its certificate carries (kubernetes.default.svc).
    cp = await ControlPlane.start();
    core = cp.kubeConfig().makeApiClient(CoreV1Api);
    kubelet = new ProcessKubelet(cp.kubeConfig(), {
      nodes: [{ name: 'edge-a', labels: {} }],
      images: {},
      runtime: 'docker',
      onLog: (pod, line) => logs.push(`${pod} ${line}`),
    });
    await kubelet.start();
    await core.createNamespace({ body: { metadata: { name: ns } } });
  });

  after(async () => {
    await kubelet?.stop();
    await cp?.stop();
  });

  test('the llm-host image: read-only root as 65532, Ready by its probe, reached through its Service; deleted, its container goes', async () => {
    const pod: V1Pod = {
      metadata: { name: 'llm', namespace: ns, labels: { app: 'llm' } },
      spec: {
        nodeName: 'edge-a',
        automountServiceAccountToken: false,
        securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532 },
        containers: [
          {
            name: 'llm-host',
            image: LLM_HOST,
            args: [
              '--model',
              'models/reference',
              '--port',
              '50051',
              '--ops-port',
              '9090',
              '--execution-provider',
              'cpu',
            ],
            ports: [
              { name: 'grpc', containerPort: 50051 },
              { name: 'ops', containerPort: 9090 },
            ],
            readinessProbe: { httpGet: { path: '/readyz', port: 'ops' as never } },
            securityContext: {
              readOnlyRootFilesystem: true,
              allowPrivilegeEscalation: false,
              capabilities: { drop: ['ALL'] },
            },
            volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
          },
        ],
        volumes: [{ name: 'tmp', emptyDir: {} }],
      },
    };
    await core.createNamespacedPod({ namespace: ns, body: pod });
    await core.createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name: 'llm' },
        spec: { selector: { app: 'llm' }, ports: [{ port: 9090, targetPort: 'ops' as never }] },
      },
    });
    const read = () => core.readNamespacedPod({ namespace: ns, name: 'llm' });
    const ready = await until('the llm-host Ready', read, (p) => p.status?.containerStatuses?.[0]?.ready === true);
    const c = ready.status!.containerStatuses![0]!;
    assert.match(c.containerID ?? '', /^docker:\/\/[0-9a-f]{64}$/);
    const id = c.containerID!.slice('docker://'.length);
    const inspect = JSON.parse((await exec('docker', ['inspect', id])).stdout)[0];
    assert.equal(inspect.HostConfig.ReadonlyRootfs, true);
    assert.equal(inspect.Config.User, '65532:65532');
    const port = await until(
      'the Service proxied',
      async () => kubelet.servicePort(ns, 'llm', 9090),
      (p) => p !== undefined,
    );
    assert.equal(await httpStatus(`http://127.0.0.1:${port}/healthz`), 200);

    await core.deleteNamespacedPod({ namespace: ns, name: 'llm' });
    await until(
      'the pod deleted',
      () =>
        read().then(
          () => false,
          (e) => (e as { code?: number }).code === 404,
        ),
      (gone) => gone,
    );
    const left = (await exec('docker', ['ps', '--all', '--quiet', '--filter', `id=${id}`])).stdout.trim();
    assert.equal(left, '', 'the container is removed');
  });

  test('in-cluster config in a container: the projected token and KUBERNETES_SERVICE_HOST give its ServiceAccount RBAC', async () => {
    const rbac = cp.kubeConfig().makeApiClient(RbacAuthorizationV1Api);
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
    const script = `
      const k8s = await import('@kubernetes/client-node');
      const kc = new k8s.KubeConfig();
      kc.loadFromDefault();
      const core = kc.makeApiClient(k8s.CoreV1Api);
      const ns = (await import('node:fs')).readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8');
      await core.listNamespacedPod({ namespace: ns }).then((l) => console.log('can list pods', l.items.length), (e) => console.log('cannot list pods', e.code ?? e.message));
      await core.listNamespacedSecret({ namespace: ns }).then(() => console.log('can list secrets'), (e) => console.log('cannot list secrets', e.code ?? e.message));
    `;
    await core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: 'sa', namespace: ns },
        spec: {
          nodeName: 'edge-a',
          serviceAccountName: 'reader',
          restartPolicy: 'Never',
          securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532 },
          containers: [
            {
              name: 'sa',
              image: OPERATOR,
              command: ['node', '--input-type=module', '-e', script],
              securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false },
            },
          ],
        },
      },
    });
    const done = await until(
      'the pod to finish',
      () => core.readNamespacedPod({ namespace: ns, name: 'sa' }),
      (p) => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed',
    );
    assert.equal(done.status?.phase, 'Succeeded', logs.join('\n'));
    assert.ok(
      logs.some((l) => /^sa can list pods \d+$/.test(l)),
      logs.join('\n'),
    );
    assert.ok(logs.includes('sa cannot list secrets 403'), logs.join('\n'));
  });
});
