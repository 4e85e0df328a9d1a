/**
 * The emulated API server driven by the real kubectl binary: apply (server-side field validation through the
 * OpenAPI v3 documents), get with the CRDs' printer columns (server-side Table), describe, wait, delete, and the
 * 422 of an invalid resource. Skipped, loudly, where kubectl is not on PATH.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type KubeApi, startKubeApi } from './index.js';

const CRDS = ['fednano.io_federations.yaml', 'fednano.io_federationrounds.yaml'].map((f) =>
  fileURLToPath(new URL(`../../../crds/${f}`, import.meta.url)),
);

const kubectlVersion = (() => {
  try {
    return execFileSync('kubectl', ['version', '--client'], { encoding: 'utf8', timeout: 10_000 });
  } catch {
    return undefined;
  }
})();
if (!kubectlVersion) {
  process.stderr.write(
    '\n*** kube-api kubectl tests SKIPPED: kubectl is not on PATH (install kubectl 1.32 to run them) ***\n\n',
  );
}

const FEDERATION = `apiVersion: fednano.io/v1alpha1
kind: Federation
metadata:
  name: f1
spec:
  model: { path: models/reference }
  clients: [{ name: a }, { name: b }, { name: c }]
  adapter: { rank: 8, alpha: 16 }
  strategy: { name: fedavg }
  training: { localSteps: 8, batchSize: 8, learningRate: 0.003, optimizer: adamw }
  participation: { clientsPerRound: 2 }
`;
const ROUND = (minClients: number) => `apiVersion: fednano.io/v1alpha1
kind: FederationRound
metadata:
  name: r1
  labels: { fednano.io/federation: f1 }
spec:
  federationRef: { name: f1 }
  round: 1
  participants: [a, b]
  minClients: ${minClients}
`;
const INVALID = `apiVersion: fednano.io/v1alpha1
kind: FederationRound
metadata:
  name: bad
spec:
  federationRef: { name: f1 }
  round: 1
  participants: [a]
  minClients: 2
`;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

describe('kubectl against the emulated API server', { skip: !kubectlVersion && 'kubectl is not on PATH' }, () => {
  let api: KubeApi;
  let dir: string;
  let env: NodeJS.ProcessEnv;

  const kubectl = (...args: string[]): Promise<Result> =>
    new Promise((resolve) => {
      execFile('kubectl', args, { env, timeout: 20_000, encoding: 'utf8' }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  const file = async (name: string, text: string) => {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  };
  const ok = (r: Result) => {
    assert.equal(r.code, 0, `kubectl failed: ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    api = await startKubeApi({ crds: CRDS });
    dir = await mkdtemp(join(tmpdir(), 'kube-api-kubectl-'));
    env = {
      ...process.env,
      KUBECONFIG: await api.writeKubeconfig(join(dir, 'kubeconfig')),
      KUBECACHEDIR: join(dir, 'cache'),
      HOME: dir,
    };
  });
  after(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('apply creates, then configures', async () => {
    const out = ok(await kubectl('apply', '-f', await file('fed.yaml', `${FEDERATION}---\n${ROUND(2)}`)));
    assert.match(out, /federation\.fednano\.io\/f1 created/);
    assert.match(out, /federationround\.fednano\.io\/r1 created/);
    const again = ok(await kubectl('apply', '-f', await file('fed2.yaml', `${FEDERATION}---\n${ROUND(1)}`)));
    assert.match(again, /federation\.fednano\.io\/f1 unchanged/);
    assert.match(again, /federationround\.fednano\.io\/r1 configured/);
    const r1 = api.get('fr', 'default', 'r1')!;
    assert.equal(r1.metadata.generation, 2);
    const spec = r1.spec as { minClients: number; deadlineSeconds: number };
    assert.equal(spec.minClients, 1);
    assert.equal(spec.deadlineSeconds, 3600, 'defaults applied');
  });

  test('get shows the printer columns, by short name, plural and category', async () => {
    api.patch(
      'fr',
      'default',
      'r1',
      { status: { phase: 'Running', received: 1, expected: 2, metrics: { loss: 0.75 } } },
      { subresource: 'status' },
    );
    for (const what of ['fr', 'federationrounds', 'fedround']) {
      const lines = ok(await kubectl('get', what))
        .trim()
        .split('\n');
      assert.deepEqual(lines[0]!.split(/\s+/), [
        'NAME',
        'FEDERATION',
        'ROUND',
        'PHASE',
        'READY',
        'EXPECTED',
        'LOSS',
        'ACCURACY',
        'AGE',
      ]);
      assert.match(lines[1]!, /^r1\s+f1\s+1\s+Running\s+1\s+2\s+0\.75\s+\d+s$/);
    }
    const category = ok(await kubectl('get', 'fednano'));
    assert.match(category, /federationround\.fednano\.io\/r1\s+f1\s+1\s+Running/);
    assert.match(category, /federation\.fednano\.io\/f1/);
    const byLabel = ok(await kubectl('get', 'fr', '-l', 'fednano.io/federation=f1', '-o', 'name'));
    assert.equal(byLabel.trim(), 'federationround.fednano.io/r1');
    const json = JSON.parse(ok(await kubectl('get', 'fr', 'r1', '-o', 'json'))) as { spec: { maxRetries: number } };
    assert.equal(json.spec.maxRetries, 2);
  });

  test('describe shows the object and its events', async () => {
    const r1 = api.get('fr', 'default', 'r1')!;
    api.create({
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: 'r1.started', namespace: 'default' },
      involvedObject: {
        apiVersion: 'fednano.io/v1alpha1',
        kind: 'FederationRound',
        name: 'r1',
        namespace: 'default',
        uid: r1.metadata.uid,
      },
      type: 'Normal',
      reason: 'Started',
      message: 'round 1 started with 2 participants',
      source: { component: 'fednano-operator' },
      firstTimestamp: r1.metadata.creationTimestamp,
      lastTimestamp: r1.metadata.creationTimestamp,
      count: 1,
    });
    const out = ok(await kubectl('describe', 'fr', 'r1'));
    assert.match(out, /^Name:\s+r1$/m);
    assert.match(out, /^Kind:\s+FederationRound$/m);
    assert.match(out, /Federation Ref:\s+Name:\s+f1/);
    assert.match(out, /Normal\s+Started\s+\S+\s+fednano-operator\s+round 1 started with 2 participants/);
  });

  test('wait --for=condition=Succeeded succeeds once the status says so', async () => {
    const waiting = kubectl('wait', '--for=condition=Succeeded', 'fr/r1', '--timeout=5s');
    await new Promise((r) => setTimeout(r, 300));
    const generation = api.get('fr', 'default', 'r1')!.metadata.generation;
    api.patch(
      'fr',
      'default',
      'r1',
      {
        status: {
          phase: 'Succeeded',
          conditions: [
            {
              type: 'Succeeded',
              status: 'True',
              reason: 'Quorum',
              message: '2 of 2',
              observedGeneration: generation,
              lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
            },
          ],
        },
      },
      { subresource: 'status' },
    );
    const r = await waiting;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /federationround\.fednano\.io\/r1 condition met/);
  });

  test('apply of an invalid resource prints the 422', async () => {
    const r = await kubectl('apply', '-f', await file('bad.yaml', INVALID));
    assert.notEqual(r.code, 0);
    // kubectl rewrites the Status message of a single Invalid object as `The <Kind> "<name>" is invalid: ...`
    assert.equal(
      r.stderr.trim(),
      'The FederationRound "bad" is invalid: spec: Invalid value: "object": minClients must not exceed the number of participants',
    );
    const unknown = await kubectl(
      'apply',
      '-f',
      await file(
        'unknown.yaml',
        ROUND(1).replace('round: 1', 'round: 1\n  colour: red').replace('name: r1', 'name: r2'),
      ),
    );
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /strict decoding error: unknown field "spec.colour"/);
  });

  test('delete removes it (and waits for it to be gone)', async () => {
    const out = ok(await kubectl('delete', 'fr', 'r1'));
    assert.match(out, /federationround\.fednano\.io "r1" deleted/);
    assert.equal(api.get('fr', 'default', 'r1'), undefined);
    const missing = await kubectl('get', 'fr', 'r1');
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /Error from server \(NotFound\): federationrounds\.fednano\.io "r1" not found/);
  });

  test('built-ins: apply a Namespace, a ConfigMap and a Deployment twice; deleting the namespace empties it', async () => {
    ok(
      await kubectl(
        'apply',
        '-f',
        await file(
          'ns.yaml',
          'apiVersion: v1\nkind: Namespace\nmetadata: { name: team }\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: { name: settings, namespace: team }\ndata: { a: b }\n',
        ),
      ),
    );
    const deployment = (replicas: number) => `apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: team }
spec:
  replicas: ${replicas}
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers: [{ name: web, image: "nginx:1.27", env: [{ name: A, value: "1" }] }]
`;
    ok(await kubectl('apply', '-f', await file('dep.yaml', deployment(1))));
    assert.match(
      ok(await kubectl('apply', '-f', await file('dep.yaml', deployment(3)))),
      /deployment\.apps\/web configured/,
    );
    assert.equal((api.get('deployments', 'team', 'web')!.spec as { replicas: number }).replicas, 3);
    const lines = ok(await kubectl('-n', 'team', 'get', 'deploy'))
      .trim()
      .split('\n');
    assert.deepEqual(lines[0]!.split(/\s+/), ['NAME', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'AGE']);
    // (kubectl delete of a built-in sends protobuf DeleteOptions, which the emulator no longer decodes.)
    api.delete('namespaces', undefined, 'team');
    await api.idle();
    assert.equal(api.get('namespaces', undefined, 'team'), undefined);
    assert.deepEqual(api.list('configmaps', { namespace: 'team' }), []);
  });
});
