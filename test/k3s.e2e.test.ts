import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { writeShard } from '@fednano/data';
import { loadModelFolder } from '@fednano/model';
import { loadConfig, planFederation } from '@fednano/simulation';
import { KubeConfig, type KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { buildAllImages, DEFAULT_TAG, engineProblem } from './support/images.js';

/**
 * The real thing, where a container engine exists and can get rancher/k3s: build the images (test/support/images.ts:
 * the four services and NATS, on node:20-bookworm-slim or its local stand-in), start k3s, run the NATS image with
 * JetStream in it, render the Helm chart (helm in a container), install it, and run a FederationRound to Succeeded on
 * a real cluster. Where no engine exists, or the k3s or helm image is neither present nor pullable (no registry, as on
 * the development machines), the suite skips, saying so loudly; test/control-plane.e2e.test.ts is the real-cluster
 * path there.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const IMAGES = ['operator', 'llm-host', 'aggregator', 'client-agent', 'nats'] as const;
const TAG = DEFAULT_TAG;
const K3S_IMAGE = 'rancher/k3s:v1.31.4-k3s1';
const HELM_IMAGE = 'alpine/helm:3.16.3';

/** Whether an image is here, or its registry answers for it (a manifest query, not a pull: seconds at most). */
function obtainable(image: string): boolean {
  const quick = { stdio: 'ignore', timeout: 30_000 } as const;
  try {
    execFileSync('docker', ['image', 'inspect', image], quick);
    return true;
  } catch {}
  try {
    execFileSync('docker', ['manifest', 'inspect', image], quick);
    return true;
  } catch {
    return false;
  }
}

async function whyNot(): Promise<string | undefined> {
  if (process.env.FEDNANO_SKIP_K3S) return 'FEDNANO_SKIP_K3S is set';
  const engine = await engineProblem();
  if (engine) return engine;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
  } catch (e) {
    return `no container engine reachable by testcontainers (${(e as Error).message.split('\n')[0]})`;
  }
  for (const image of [K3S_IMAGE, HELM_IMAGE])
    if (!obtainable(image)) return `${image} is neither present nor pullable (no registry reachable?)`;
  return undefined;
}

const skip = await whyNot();
if (skip)
  process.stderr.write(
    `\n*** SKIPPED test/k3s.e2e.test.ts: ${skip}. This suite builds the images, installs charts/fednano into k3s and runs a round on a real cluster; run it on a machine with Docker that can pull ${K3S_IMAGE} and ${HELM_IMAGE}. ***\n\n`,
  );

describe('k3s + NATS containers: helm chart, operator and a real round', {
  skip: skip ? `SKIPPED: ${skip}` : false,
  timeout: 30 * 60_000,
}, () => {
  let k3s: import('@testcontainers/k3s').StartedK3sContainer;
  let api: KubernetesObjectApi;
  let work: string;

  const apply = async (docs: KubernetesObject[]) => {
    for (const d of docs) {
      d.metadata = {
        namespace:
          d.kind?.startsWith('Cluster') || d.kind === 'CustomResourceDefinition' || d.kind === 'Namespace'
            ? undefined
            : 'default',
        ...d.metadata,
      };
      try {
        await api.create(d);
      } catch (e) {
        if ((e as { code?: number }).code !== 409) throw e;
      }
    }
  };
  const yamlDocs = (text: string) =>
    parseAllDocuments(text)
      .map((d) => d.toJSON() as KubernetesObject)
      .filter((d) => d?.kind);

  before(async () => {
    const { GenericContainer, Wait } = await import('testcontainers');
    const { K3sContainer } = await import('@testcontainers/k3s');
    work = await mkdtemp(join(tmpdir(), 'fednano-k3s-'));
    await buildAllImages(TAG);
    k3s = await new K3sContainer(K3S_IMAGE).start();
    for (const image of IMAGES) {
      const tar = join(work, `${image}.tar`);
      execFileSync('docker', ['save', `fednano/${image}:${TAG}`, '-o', tar]);
      await k3s.copyFilesToContainer([{ source: tar, target: `/tmp/${image}.tar` }]);
      const r = await k3s.exec(['ctr', 'images', 'import', `/tmp/${image}.tar`]);
      assert.equal(r.exitCode, 0, r.output);
    }
    const kc = new KubeConfig();
    kc.loadFromString(k3s.getKubeConfig());
    api = KubernetesObjectApi.makeApiClient(kc);
    // NATS with JetStream inside the cluster.
    await apply(
      yamlDocs(`
apiVersion: apps/v1
kind: Deployment
metadata: { name: nats }
spec:
  selector: { matchLabels: { app: nats } }
  template:
    metadata: { labels: { app: nats } }
    spec:
      containers:
        - name: nats
          image: fednano/nats:${TAG}
          imagePullPolicy: Never
          ports: [{ containerPort: 4222 }]
          securityContext: { readOnlyRootFilesystem: true, runAsNonRoot: true }
          volumeMounts: [{ name: data, mountPath: /data }]
      volumes: [{ name: data, emptyDir: {} }]
---
apiVersion: v1
kind: Service
metadata: { name: nats }
spec:
  selector: { app: nats }
  ports: [{ port: 4222 }]
`),
    );
    // The chart, rendered by helm in a container and applied.
    const helm = await new GenericContainer(HELM_IMAGE)
      .withCopyDirectoriesToContainer([{ source: join(ROOT, 'charts/fednano'), target: '/chart' }])
      .withCommand([
        'template',
        'fednano',
        '/chart',
        '--include-crds',
        '--namespace',
        'default',
        '--set',
        'nats.url=nats://nats.default.svc:4222',
        '--set',
        `images.tag=${TAG}`,
        '--set',
        'images.pullPolicy=Never',
      ])
      .withWaitStrategy(Wait.forOneShotStartup())
      .start();
    const rendered = await new Promise<string>((resolve, reject) => {
      let out = '';
      helm.logs().then(
        (s) =>
          s
            .on('data', (c: Buffer) => (out += c.toString()))
            .on('end', () => resolve(out))
            .on('error', reject),
        reject,
      );
    });
    await apply(yamlDocs(rendered));
    // Client data on the node's disk, where the Federation's hostPath volumes point.
    const config = await loadConfig(join(ROOT, 'test/fixtures/e2e-small.yaml'));
    const folder = await loadModelFolder(join(ROOT, config.spec.model.path));
    const plan = await planFederation(config, folder.manifest.recipe.seed);
    for (const c of plan.clients.slice(0, 3)) await writeShard(join(work, 'shards', c.id), plan.sets, c.questions);
    await k3s.copyDirectoriesToContainer([{ source: join(work, 'shards'), target: '/var/lib/fednano' }]);
  });

  after(async () => {
    await k3s?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('a FederationRound reaches Succeeded with its updates counted', async () => {
    const clients = ['client-0', 'client-1', 'client-2'];
    await apply([
      {
        apiVersion: 'fednano.io/v1alpha1',
        kind: 'Federation',
        metadata: { name: 'e2e' },
        spec: {
          model: { path: 'models/reference' },
          llmHost: { gpus: 0 },
          clients: clients.map((name) => ({ name, dataVolume: { hostPath: { path: `/var/lib/fednano/${name}` } } })),
          adapter: { rank: 8, alpha: 16 },
          strategy: { name: 'fisher' },
          training: { localSteps: 8, batchSize: 8, learningRate: 0.003, optimizer: 'adamw', fisherSamples: 16 },
          participation: { clientsPerRound: 3, minClients: 2 },
        },
      } as KubernetesObject,
      {
        apiVersion: 'fednano.io/v1alpha1',
        kind: 'FederationRound',
        metadata: { name: 'e2e-round-1' },
        spec: { federationRef: { name: 'e2e' }, round: 1, deadlineSeconds: 900 },
      } as KubernetesObject,
    ]);
    const deadline = Date.now() + 20 * 60_000;
    let phase: string | undefined;
    let status: Record<string, unknown> | undefined;
    while (Date.now() < deadline) {
      const r = (await api.read({
        apiVersion: 'fednano.io/v1alpha1',
        kind: 'FederationRound',
        metadata: { name: 'e2e-round-1', namespace: 'default' },
      })) as { status?: Record<string, unknown> };
      status = r.status;
      phase = status?.phase as string | undefined;
      if (phase === 'Succeeded' || phase === 'Failed') break;
      await new Promise((res) => setTimeout(res, 5000));
    }
    assert.equal(phase, 'Succeeded', JSON.stringify(status));
    assert.ok((status?.received as number) >= 2);
  });
});
