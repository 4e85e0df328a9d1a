import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual, promisify } from 'node:util';
import {
  ApiextensionsV1Api,
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type KubernetesObject,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
  Watch,
} from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { ControlPlane, controlPlaneProblem } from './support/control-plane.js';
import { type KubeApi, startKubeApi } from './support/kube-api/index.js';
import { toolPath } from './support/tools.js';

/**
 * The emulated API server (test/support/kube-api) against the real kube-apiserver (test/support/control-plane.ts):
 * the same requests, through the real client-node (and the real kubectl for what the emulator's users run with it),
 * to both, and the same answers once what legitimately differs is normalised away (see `normalise`). What is compared
 * is what the operator, the process kubelet and the suites that run on the emulator use.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CRD_FILES = ['fednano.io_federations.yaml', 'fednano.io_federationrounds.yaml'].map((f) => join(ROOT, 'crds', f));
const NS = 'conformance';
const G = { group: 'fednano.io', version: 'v1alpha1', namespace: NS };
const skip = controlPlaneProblem();
if (skip)
  process.stderr.write(
    `\n*** SKIPPED test/kube-api-conformance.e2e.test.ts: ${skip}. It compares the emulated API server with the real one. ***\n\n`,
  );
// The kubectl the emulator's users run (on PATH, as test/operator.e2e.test.ts does), else the pinned one.
const KUBECTL =
  spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0 ? 'kubectl' : toolPath('kubectl');
const exec = promisify(execFile);

interface Side {
  name: 'emulated' | 'real';
  kc: KubeConfig;
  kubeconfigPath: string;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  ext: ApiextensionsV1Api;
  coord: CoordinationV1Api;
  kubectl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
}

function side(name: Side['name'], kc: KubeConfig, kubeconfigPath: string): Side {
  return {
    name,
    kc,
    kubeconfigPath,
    core: kc.makeApiClient(CoreV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    ext: kc.makeApiClient(ApiextensionsV1Api),
    coord: kc.makeApiClient(CoordinationV1Api),
    kubectl: async (...args) => {
      try {
        const { stdout, stderr } = await exec(KUBECTL, ['--kubeconfig', kubeconfigPath, '-n', NS, ...args], {
          env: { ...process.env, KUBECACHEDIR: join(kubeconfigPath, '..', `cache-${name}`) },
        });
        return { code: 0, stdout, stderr };
      } catch (e) {
        const x = e as { code?: number; stdout?: string; stderr?: string };
        return { code: x.code ?? 1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
      }
    },
  };
}

/**
 * What differs legitimately between two servers given the same requests: identities and clocks (uid,
 * resourceVersion, creationTimestamp, deletionTimestamp's value, generateName suffixes, condition and lease times),
 * managedFields (the emulator does not track field ownership; nothing here reads them), and the values of server
 * defaults that are per-cluster (a pod's projected service-account token volume, Node-less scheduling details).
 */
const TIME_KEYS = new Set([
  'creationTimestamp',
  'lastTransitionTime',
  'lastUpdateTime',
  'lastProbeTime',
  'renewTime',
  'acquireTime',
  'eventTime',
  'firstTimestamp',
  'lastTimestamp',
  'startTime',
]);
function normalise(v: unknown, key = ''): unknown {
  if (Array.isArray(v)) return v.map((x) => normalise(x));
  if (v instanceof Date) return '<time>';
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (x === undefined) continue;
      if (k === 'uid' || k === 'managedFields' || k === 'selfLink') continue;
      const last = k.split('.').pop()!; // pick() keys are paths
      if (last === 'resourceVersion') out[k] = x === '' ? '' : '<rv>';
      else if (TIME_KEYS.has(last) || last === 'deletionTimestamp') out[k] = '<time>';
      else out[k] = normalise(x, k);
    }
    return out;
  }
  if (key === 'message' && typeof v === 'string')
    return v.replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, '<time>').replace(/"\.\d+Z"/g, '".<fraction>Z"');
  return v;
}

/** The answer to a call: its value, or the API error's code and Status body. */
async function answer(f: () => Promise<unknown>): Promise<unknown> {
  try {
    return { ok: normalise(await f()) };
  } catch (e) {
    const x = e as { code?: number; body?: unknown; message?: string };
    if (typeof x.code !== 'number') throw e;
    let body = x.body;
    if (typeof body === 'string')
      try {
        body = JSON.parse(body);
      } catch {}
    return { error: x.code, body: normalise(body) };
  }
}

const pick = (o: unknown, ...paths: string[]) =>
  Object.fromEntries(
    paths.map((p) => [
      p,
      p.split('.').reduce<unknown>((x, k) => (x as Record<string, unknown> | undefined)?.[k], o as unknown),
    ]),
  );

let work: string;
let api: KubeApi;
let cp: ControlPlane;
let emu: Side;
let real: Side;

/** Sends the same thing to both and asserts the same (normalised) answer; returns it. */
async function same<T>(what: string, f: (s: Side) => Promise<T>, view: (v: T) => unknown = (v) => v) {
  const [a, b] = [await answer(async () => view(await f(emu))), await answer(async () => view(await f(real)))];
  if (process.env.CONFORMANCE_DEBUG && !isDeepStrictEqual(a, b))
    process.stderr.write(`--- ${what}\nemulated: ${JSON.stringify(a)}\nreal:     ${JSON.stringify(b)}\n`);
  assert.deepEqual(a, b, `${what}: emulated (actual) vs real (expected)`);
  return a as { ok?: unknown; error?: number; body?: unknown };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function eventually<T>(what: string, f: () => Promise<T>, ok: (v: T) => boolean, ms = 90_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch((e) => e as T);
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)?.slice(0, 500)}`);
    await sleep(100);
  }
}

const federation = (name: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'fednano.io/v1alpha1',
  kind: 'Federation',
  metadata: { name, namespace: NS, ...extra },
  spec: {
    model: { path: 'models/reference' },
    clients: [
      { name: 'a', nodeSelector: { 'kubernetes.io/hostname': 'edge-a' }, dataVolume: { hostPath: { path: '/d/a' } } },
      { name: 'b', nodeSelector: { 'kubernetes.io/hostname': 'edge-b' }, dataVolume: { hostPath: { path: '/d/b' } } },
    ],
    adapter: { rank: 8, alpha: 16 },
    strategy: { name: 'fedavg' },
    training: { localSteps: 2, batchSize: 4, learningRate: 0.01, optimizer: 'adamw' },
    participation: { fraction: 1 },
  },
});
const roundObj = (name: string, spec: Record<string, unknown> = {}, meta: Record<string, unknown> = {}) => ({
  apiVersion: 'fednano.io/v1alpha1',
  kind: 'FederationRound',
  metadata: { name, namespace: NS, ...meta },
  spec: { federationRef: { name: 'fed' }, round: 1, deadlineSeconds: 600, ...spec },
});
const createFr = (s: Side, body: object) =>
  s.custom.createNamespacedCustomObject({ ...G, plural: 'federationrounds', body });
const getFr = (s: Side, name: string) => s.custom.getNamespacedCustomObject({ ...G, plural: 'federationrounds', name });

describe('the emulated API server answers as the real kube-apiserver', { skip }, () => {
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'fednano-conformance-'));
    [api, cp] = await Promise.all([
      startKubeApi({
        podGracefulDeletion: true,
        // What test/operator.e2e.test.ts and test/security.e2e.test.ts run with, against the real scheduler and
        // kube-controller-manager's deployment, replicaset and garbage collector controllers.
        schedulePods: true,
        deploymentController: true,
      }),
      ControlPlane.start(),
    ]);
    const kc = new KubeConfig();
    kc.loadFromString(api.kubeconfig());
    emu = side('emulated', kc, await api.writeKubeconfig(join(work, 'emulated.kubeconfig')));
    real = side('real', cp.kubeConfig(), cp.kubeconfigPath);
    for (const s of [emu, real]) {
      await s.core.createNamespace({ body: { metadata: { name: NS } } });
      // Pods are refused until the ServiceAccount controller made `default` (the emulator makes it at once).
      await eventually(
        `${s.name}: serviceaccount default`,
        () => s.core.readNamespacedServiceAccount({ namespace: NS, name: 'default' }),
        (x) => !(x instanceof Error),
      );
    }
  });
  after(async () => {
    await Promise.all([api?.close(), cp?.stop()]);
    await rm(work, { recursive: true, force: true });
  });

  test('CRDs created through the API are Established and their resources served', async () => {
    for (const file of CRD_FILES) {
      const body = parseYaml(await readFile(file, 'utf8'));
      await same(
        `create ${body.metadata.name}`,
        (s) => s.ext.createCustomResourceDefinition({ body }),
        (crd) => ({ metadata: pick(crd.metadata, 'name', 'generation'), spec: crd.spec }),
      );
    }
    for (const s of [emu, real])
      await eventually(
        `${s.name}: CRDs established`,
        () => s.custom.listNamespacedCustomObject({ ...G, plural: 'federationrounds' }),
        (x) => !(x instanceof Error),
      );
    await same(
      'CRD status once established',
      (s) => s.ext.readCustomResourceDefinition({ name: 'federationrounds.fednano.io' }),
      (crd) => ({
        acceptedNames: crd.status?.acceptedNames,
        storedVersions: crd.status?.storedVersions,
        conditions: crd.status?.conditions
          ?.map((c) => pick(c, 'type', 'status', 'reason'))
          .sort((a, b) => String(a.type).localeCompare(String(b.type))),
      }),
    );
  });

  test('create (defaults, pruning), AlreadyExists, get, NotFound', async () => {
    await same('create federation', (s) =>
      s.custom.createNamespacedCustomObject({
        ...G,
        plural: 'federations',
        body: { ...federation('fed'), spec: { ...federation('fed').spec, unknownField: 1 } },
      }),
    );
    await same('create it again', (s) =>
      s.custom.createNamespacedCustomObject({ ...G, plural: 'federations', body: federation('fed') }),
    );
    await same('get', (s) => s.custom.getNamespacedCustomObject({ ...G, plural: 'federations', name: 'fed' }));
    await same('get missing', (s) => getFr(s, 'missing'));
    await same('get in a missing namespace', (s) =>
      s.custom.getNamespacedCustomObject({ ...G, namespace: 'nope', plural: 'federations', name: 'fed' }),
    );
  });

  test('CRD OpenAPI and CEL validation errors', async () => {
    const bad = federation('bad');
    await same('wrong type', (s) =>
      s.custom.createNamespacedCustomObject({
        ...G,
        plural: 'federations',
        body: { ...bad, spec: { ...bad.spec, adapter: { rank: 'eight', alpha: 16 } } },
      }),
    );
    await same('enum and minimum', (s) =>
      s.custom.createNamespacedCustomObject({
        ...G,
        plural: 'federations',
        body: {
          ...bad,
          spec: { ...bad.spec, adapter: { rank: 0, alpha: 16 }, training: { ...bad.spec.training, optimizer: 'x' } },
        },
      }),
    );
    await same('required', (s) =>
      s.custom.createNamespacedCustomObject({
        ...G,
        plural: 'federations',
        body: { ...bad, spec: { ...bad.spec, model: undefined } },
      }),
    );
    await same('CEL rule on the round (participants and fraction)', (s) =>
      createFr(s, roundObj('bad-round', { participants: ['a'], fraction: 0.5 })),
    );
    await same('CEL rule on the round (minClients)', (s) =>
      createFr(s, roundObj('bad-round', { participants: ['a'], minClients: 2 })),
    );
    await same('CEL rule on the federation (participation)', (s) =>
      s.custom.createNamespacedCustomObject({
        ...G,
        plural: 'federations',
        body: { ...bad, spec: { ...bad.spec, participation: { fraction: 1, clientsPerRound: 1 } } },
      }),
    );
  });

  test('list with label and field selectors', async () => {
    for (const [name, labels] of [
      ['r1', { tier: 'a', n: '1' }],
      ['r2', { tier: 'b', n: '2' }],
      ['r3', { tier: 'a' }],
    ] as const)
      await same(`create ${name}`, (s) => createFr(s, roundObj(name, {}, { labels })));
    const names = (l: { items: { metadata: { name: string } }[] }) => ({
      kind: (l as unknown as { kind: string }).kind,
      items: l.items.map((i) => i.metadata.name),
    });
    for (const labelSelector of ['tier=a', 'tier!=a', 'tier in (a,b),n', '!n', 'n notin (1)', 'tier=a,n=1'])
      await same(
        `labelSelector ${labelSelector}`,
        (s) => s.custom.listNamespacedCustomObject({ ...G, plural: 'federationrounds', labelSelector }),
        names,
      );
    await same(
      'fieldSelector metadata.name',
      (s) =>
        s.custom.listNamespacedCustomObject({ ...G, plural: 'federationrounds', fieldSelector: 'metadata.name=r2' }),
      names,
    );
    await same(
      'fieldSelector metadata.namespace across namespaces',
      (s) =>
        s.custom.listClusterCustomObject({
          ...G,
          plural: 'federationrounds',
          fieldSelector: `metadata.namespace=${NS}`,
        }),
      names,
    );
    await same('fieldSelector on an unsupported field', (s) =>
      s.custom.listNamespacedCustomObject({ ...G, plural: 'federationrounds', fieldSelector: 'spec.round=1' }),
    );
    await same('invalid labelSelector', (s) =>
      s.custom.listNamespacedCustomObject({ ...G, plural: 'federationrounds', labelSelector: 'a in (' }),
    );
  });

  test('update: stale resourceVersion is 409 Conflict; a missing one is refused for custom resources', async () => {
    const stale = new Map<string, { metadata: { resourceVersion: string } }>();
    for (const s of [emu, real]) stale.set(s.name, (await getFr(s, 'r1')) as never);
    await same('update with the current resourceVersion', async (s) => {
      const cur = stale.get(s.name)!;
      return s.custom.replaceNamespacedCustomObject({
        ...G,
        plural: 'federationrounds',
        name: 'r1',
        body: { ...cur, spec: { ...(cur as never as { spec: object }).spec, deadlineSeconds: 700 } },
      });
    });
    await same('update with the stale one', async (s) => {
      const cur = stale.get(s.name)!;
      return s.custom.replaceNamespacedCustomObject({
        ...G,
        plural: 'federationrounds',
        name: 'r1',
        body: { ...cur, spec: { ...(cur as never as { spec: object }).spec, deadlineSeconds: 800 } },
      });
    });
    await same('update without a resourceVersion', async (s) =>
      s.custom.replaceNamespacedCustomObject({
        ...G,
        plural: 'federationrounds',
        name: 'r1',
        body: roundObj('r1', { deadlineSeconds: 900 }),
      }),
    );
  });

  test('patch: merge and JSON patch on custom resources, strategic is 415 there; strategic on a ConfigMap', async () => {
    await same('merge patch', (s) =>
      s.custom.patchNamespacedCustomObject(
        {
          ...G,
          plural: 'federationrounds',
          name: 'r2',
          body: { metadata: { labels: { n: null, m: 'x' } }, spec: { maxRetries: 3 } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
    await same('JSON patch', (s) =>
      s.custom.patchNamespacedCustomObject(
        {
          ...G,
          plural: 'federationrounds',
          name: 'r2',
          body: [
            { op: 'replace', path: '/spec/deadlineSeconds', value: 60 },
            { op: 'add', path: '/metadata/annotations', value: { a: 'b' } },
          ],
        },
        setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
      ),
    );
    await same('JSON patch test op fails', (s) =>
      s.custom.patchNamespacedCustomObject(
        { ...G, plural: 'federationrounds', name: 'r2', body: [{ op: 'test', path: '/spec/round', value: 9 }] },
        setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
      ),
    );
    await same('merge patch that breaks the schema', (s) =>
      s.custom.patchNamespacedCustomObject(
        { ...G, plural: 'federationrounds', name: 'r2', body: { spec: { round: 'one' } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
    const sm = async (s: Side) => {
      const r = await answer(() =>
        s.custom.patchNamespacedCustomObject(
          { ...G, plural: 'federationrounds', name: 'r2', body: { spec: { maxRetries: 1 } } },
          setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
        ),
      );
      return pick(r, 'error', 'body.reason', 'body.code');
    };
    assert.deepEqual(await sm(emu), await sm(real), 'strategic merge patch on a custom resource: code and reason');
    await same('configmap create', (s) =>
      s.core.createNamespacedConfigMap({
        namespace: NS,
        body: { metadata: { name: 'cm', labels: { a: '1' } }, data: { x: '1', y: '2' } },
      }),
    );
    await same('strategic merge patch on a ConfigMap', (s) =>
      s.core.patchNamespacedConfigMap(
        { namespace: NS, name: 'cm', body: { metadata: { labels: { a: null, b: '2' } }, data: { y: null, z: '3' } } },
        setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
      ),
    );
  });

  test('the status subresource: status writes ignore spec, main writes ignore status', async () => {
    const cur = new Map<string, Record<string, unknown>>();
    for (const s of [emu, real]) cur.set(s.name, (await getFr(s, 'r3')) as never);
    await same('replace status (spec change ignored)', (s) => {
      const c = cur.get(s.name)!;
      return s.custom.replaceNamespacedCustomObjectStatus({
        ...G,
        plural: 'federationrounds',
        name: 'r3',
        body: {
          ...c,
          spec: { ...(c.spec as object), round: 7 },
          status: { phase: 'Running', received: 1, expected: 2 },
        },
      });
    });
    await same('replace main resource (status change ignored, generation +1)', async (s) => {
      const c = (await getFr(s, 'r3')) as Record<string, unknown>;
      return s.custom.replaceNamespacedCustomObject({
        ...G,
        plural: 'federationrounds',
        name: 'r3',
        body: { ...c, spec: { ...(c.spec as object), round: 2 }, status: { phase: 'Failed' } },
      });
    });
    await same('merge patch of status', (s) =>
      s.custom.patchNamespacedCustomObjectStatus(
        {
          ...G,
          plural: 'federationrounds',
          name: 'r3',
          body: { status: { phase: 'Succeeded', metrics: { loss: 0.5, accuracy: 0.75 } } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
    await same('status that breaks the schema', (s) =>
      s.custom.patchNamespacedCustomObjectStatus(
        { ...G, plural: 'federationrounds', name: 'r3', body: { status: { received: 'many' } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
  });

  test('kubectl get fr: the printer columns (Table), and -o json', async () => {
    const get = async (s: Side) => {
      const r = await s.kubectl('get', 'fr');
      // Ages differ by the seconds between the two creates.
      return { ...r, stdout: r.stdout.replace(/\s+\d+[smh]\n/g, ' <age>\n').replace(/[ ]+/g, ' ') };
    };
    assert.deepEqual(await get(emu), await get(real), 'kubectl get fr');
    const wide = async (s: Side) => {
      const r = await s.kubectl('get', 'fr', 'r3', '-o', 'json');
      return { ...r, stdout: normalise(JSON.parse(r.stdout)) };
    };
    assert.deepEqual(await wide(emu), await wide(real), 'kubectl get fr r3 -o json');
  });

  test('kubectl apply (create, configure, invalid) and wait', async () => {
    const file = join(work, 'round.yaml');
    await writeFile(
      file,
      `apiVersion: fednano.io/v1alpha1\nkind: FederationRound\nmetadata: { name: applied, namespace: ${NS} }\nspec: { federationRef: { name: fed }, round: 1, deadlineSeconds: 60 }\n`,
    );
    for (const what of ['created', 'configured', 'unchanged']) {
      if (what === 'configured') await writeFile(file, (await readFile(file, 'utf8')).replace('60', '120'));
      const a = await emu.kubectl('apply', '-f', file);
      const b = await real.kubectl('apply', '-f', file);
      assert.deepEqual(a, b, `kubectl apply (${what})`);
    }
    await writeFile(file, (await readFile(file, 'utf8')).replace('round: 1', 'round: -1'));
    const [a, b] = [await emu.kubectl('apply', '-f', file), await real.kubectl('apply', '-f', file)];
    assert.deepEqual(a, b, 'kubectl apply of an invalid round');
    const wait = (s: Side) => s.kubectl('wait', '--for=condition=Succeeded', 'fr/r3', '--timeout=2s');
    assert.deepEqual(await wait(emu), await wait(real), 'kubectl wait on a round without the condition');
    for (const s of [emu, real])
      await s.custom.patchNamespacedCustomObjectStatus(
        {
          ...G,
          plural: 'federationrounds',
          name: 'r3',
          body: {
            status: {
              conditions: [
                {
                  type: 'Succeeded',
                  status: 'True',
                  reason: 'Quorum',
                  message: 'done',
                  lastTransitionTime: new Date(),
                },
              ],
            },
          },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    assert.deepEqual(await wait(emu), await wait(real), 'kubectl wait once the condition is True');
  });

  test('informers (client-node makeInformer, as the operator runs them): the same add/update/delete sequence', async () => {
    const run = async (s: Side) => {
      const seen: string[] = [];
      const path = `/apis/fednano.io/v1alpha1/namespaces/${NS}/federationrounds`;
      const informer = makeInformer<KubernetesObject & { spec?: { round?: number } }>(
        s.kc,
        path,
        () =>
          s.custom.listNamespacedCustomObject({ ...G, plural: 'federationrounds', labelSelector: 'inf=1' }) as never,
        'inf=1',
      );
      for (const ev of ['add', 'update', 'delete'] as const)
        informer.on(ev, (o) => seen.push(`${ev} ${o.metadata?.name} ${o.spec?.round}`));
      await createFr(s, roundObj('inf-a', {}, { labels: { inf: '1' } }));
      await informer.start();
      await createFr(s, roundObj('inf-b', {}, { labels: { inf: '1' } }));
      await s.custom.patchNamespacedCustomObject(
        { ...G, plural: 'federationrounds', name: 'inf-a', body: { spec: { round: 4 } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      await s.custom.deleteNamespacedCustomObject({ ...G, plural: 'federationrounds', name: 'inf-b' });
      await eventually(
        `${s.name}: informer events`,
        async () => seen.length,
        (n) => n >= 4,
        10_000,
      ).catch(() => 0);
      await sleep(300);
      await informer.stop();
      return {
        seen,
        cached: informer
          .list()
          .map((o) => o.metadata?.name)
          .sort(),
      };
    };
    const [a, b] = [await run(emu), await run(real)];
    assert.ok(a.seen.length >= 4, JSON.stringify(a));
    assert.deepEqual(a, b);
  });

  test('finalizers and deletionTimestamp', async () => {
    await same('create with a finalizer', (s) =>
      createFr(s, roundObj('fin', {}, { finalizers: ['fednano.io/cleanup'] })),
    );
    await same('delete', (s) =>
      s.custom.deleteNamespacedCustomObject({ ...G, plural: 'federationrounds', name: 'fin' }),
    );
    await same('get while terminating', (s) => getFr(s, 'fin'));
    await same('a new finalizer is refused while terminating', async (s) => {
      const c = (await getFr(s, 'fin')) as { metadata: { finalizers: string[] } };
      c.metadata.finalizers.push('fednano.io/other');
      return s.custom.replaceNamespacedCustomObject({ ...G, plural: 'federationrounds', name: 'fin', body: c });
    });
    await same('removing the finalizer deletes it', async (s) => {
      const c = (await getFr(s, 'fin')) as { metadata: { finalizers?: string[] } };
      c.metadata.finalizers = [];
      return s.custom.replaceNamespacedCustomObject({ ...G, plural: 'federationrounds', name: 'fin', body: c });
    });
    await same('gone', (s) => getFr(s, 'fin'));
  });

  test('ownerReferences and garbage collection: background and foreground', async () => {
    const uids = new Map<string, string>();
    for (const s of [emu, real]) {
      const owner = (await createFr(s, roundObj('owner'))) as { metadata: { uid: string } };
      uids.set(s.name, owner.metadata.uid);
      for (const name of ['dep-1', 'dep-2'])
        await s.core.createNamespacedConfigMap({
          namespace: NS,
          body: {
            metadata: {
              name,
              ownerReferences: [
                {
                  apiVersion: 'fednano.io/v1alpha1',
                  kind: 'FederationRound',
                  name: 'owner',
                  uid: owner.metadata.uid,
                  controller: true,
                  blockOwnerDeletion: true,
                },
              ],
            },
          },
        });
    }
    await same('background delete of the owner', (s) =>
      s.custom.deleteNamespacedCustomObject({
        ...G,
        plural: 'federationrounds',
        name: 'owner',
        propagationPolicy: 'Background',
      }),
    );
    for (const s of [emu, real])
      await eventually(
        `${s.name}: dependents collected`,
        async () => (await s.core.listNamespacedConfigMap({ namespace: NS })).items.map((c) => c.metadata!.name),
        (names) => Array.isArray(names) && !names.includes('dep-1') && !names.includes('dep-2'),
      );
    for (const s of [emu, real]) {
      const owner = (await createFr(s, roundObj('owner2'))) as { metadata: { uid: string } };
      await s.core.createNamespacedConfigMap({
        namespace: NS,
        body: {
          metadata: {
            name: 'dep-3',
            finalizers: ['example.com/hold'],
            ownerReferences: [
              {
                apiVersion: 'fednano.io/v1alpha1',
                kind: 'FederationRound',
                name: 'owner2',
                uid: owner.metadata.uid,
                blockOwnerDeletion: true,
              },
            ],
          },
        },
      });
    }
    await same(
      'foreground delete of the owner',
      (s) =>
        s.custom.deleteNamespacedCustomObject({
          ...G,
          plural: 'federationrounds',
          name: 'owner2',
          propagationPolicy: 'Foreground',
        }),
      (o) => pick(o, 'metadata.finalizers', 'metadata.deletionTimestamp', 'metadata.name'),
    );
    for (const s of [emu, real])
      await eventually(
        `${s.name}: the held dependent is being deleted`,
        () => s.core.readNamespacedConfigMap({ namespace: NS, name: 'dep-3' }),
        (c) => !!(c as { metadata?: { deletionTimestamp?: unknown } }).metadata?.deletionTimestamp,
      );
    await same(
      'the owner waits for its dependent (foregroundDeletion finalizer)',
      (s) => getFr(s, 'owner2'),
      (o) => pick(o, 'metadata.finalizers', 'metadata.deletionTimestamp'),
    );
    for (const s of [emu, real])
      await s.core.patchNamespacedConfigMap(
        { namespace: NS, name: 'dep-3', body: { metadata: { finalizers: null } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    for (const s of [emu, real])
      await eventually(
        `${s.name}: the owner is gone`,
        () => getFr(s, 'owner2'),
        (x) => (x as { code?: number }).code === 404,
      );
  });

  test('watch: ADDED/MODIFIED/DELETED, resumption from a resourceVersion, 410 for an expired one', async () => {
    const watchEvents = async (s: Side, resourceVersion: string, act: () => Promise<void>, count: number) => {
      const events: unknown[] = [];
      let done!: () => void;
      const finished = new Promise<void>((r) => {
        done = r;
      });
      const req = await new Watch(s.kc).watch(
        `/apis/fednano.io/v1alpha1/namespaces/${NS}/federationrounds`,
        { resourceVersion, labelSelector: 'w=1' },
        (type, obj) => {
          events.push({
            type,
            name: obj?.metadata?.name,
            code: obj?.code,
            reason: obj?.reason,
            round: obj?.spec?.round,
          });
          if (events.length >= count) done();
        },
        () => done(),
      );
      await act();
      await Promise.race([finished, sleep(10_000)]);
      req.abort();
      return events;
    };
    const rvs = new Map<string, string>();
    const script = async (s: Side) => {
      const list = (await s.custom.listNamespacedCustomObject({ ...G, plural: 'federationrounds' })) as {
        metadata: { resourceVersion: string };
      };
      rvs.set(s.name, list.metadata.resourceVersion);
      return watchEvents(
        s,
        list.metadata.resourceVersion,
        async () => {
          await createFr(s, roundObj('w', {}, { labels: { w: '1' } }));
          await s.custom.patchNamespacedCustomObject(
            { ...G, plural: 'federationrounds', name: 'w', body: { spec: { round: 5 } } },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          );
          await s.custom.patchNamespacedCustomObject(
            { ...G, plural: 'federationrounds', name: 'w', body: { metadata: { labels: { w: '2' } } } },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          );
          await s.custom.patchNamespacedCustomObject(
            { ...G, plural: 'federationrounds', name: 'w', body: { metadata: { labels: { w: '1' } } } },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
          );
          await s.custom.deleteNamespacedCustomObject({ ...G, plural: 'federationrounds', name: 'w' });
        },
        5,
      );
    };
    assert.deepEqual(await script(emu), await script(real), 'live watch from the list resourceVersion');
    const resume = (s: Side) => watchEvents(s, rvs.get(s.name)!, async () => {}, 5);
    assert.deepEqual(await resume(emu), await resume(real), 'a watch resumed from the same resourceVersion replays');
    // An expired resourceVersion: the emulator forgets its history on demand; the real server's etcd compacts every
    // 5 minutes, so a resourceVersion below the compaction point is asked for with a very old one ("1").
    api.compactHistory();
    const expired = async (s: Side) =>
      (await watchEvents(s, s.name === 'emulated' ? rvs.get(s.name)! : '1', async () => {}, 1)).slice(0, 1);
    const [a, b] = [await expired(emu), await expired(real)];
    assert.deepEqual(a, b, 'watch from an expired resourceVersion: ERROR 410 Expired');
  });

  test('pods bound to nodes, graceful deletion', async () => {
    for (const s of [emu, real])
      await s.core.createNode({
        body: { metadata: { name: 'edge-x', labels: { 'kubernetes.io/hostname': 'edge-x' } } },
      });
    await same(
      'create a bound pod',
      (s) =>
        s.core.createNamespacedPod({
          namespace: NS,
          body: {
            metadata: { name: 'p' },
            spec: { nodeName: 'edge-x', restartPolicy: 'Never', containers: [{ name: 'c', image: 'x' }] },
          },
        }),
      (p) => ({
        ...pick(p, 'spec.nodeName', 'spec.restartPolicy', 'spec.dnsPolicy', 'spec.schedulerName'),
        ...pick(p, 'spec.terminationGracePeriodSeconds', 'spec.serviceAccountName', 'status.phase', 'status.qosClass'),
        container: pick(p.spec?.containers[0], 'imagePullPolicy', 'terminationMessagePath', 'terminationMessagePolicy'),
        tolerations: p.spec?.tolerations,
      }),
    );
    await same(
      'pod status Running through the status subresource',
      async (s) => {
        const p = await s.core.readNamespacedPod({ namespace: NS, name: 'p' });
        return s.core.replaceNamespacedPodStatus({
          namespace: NS,
          name: 'p',
          body: { ...p, status: { ...p.status, phase: 'Running' } },
        });
      },
      (p) => pick(p, 'status.phase', 'spec.nodeName'),
    );
    await same(
      'list pods by spec.nodeName and status.phase',
      (s) => s.core.listNamespacedPod({ namespace: NS, fieldSelector: 'spec.nodeName=edge-x,status.phase=Running' }),
      (l) => l.items.map((p) => p.metadata?.name),
    );
    await same(
      'delete a bound pod: Terminating with the grace period',
      (s) => s.core.deleteNamespacedPod({ namespace: NS, name: 'p' }),
      (p) => pick(p, 'metadata.deletionTimestamp', 'metadata.deletionGracePeriodSeconds', 'status.phase'),
    );
    await same(
      'still there',
      (s) => s.core.readNamespacedPod({ namespace: NS, name: 'p' }),
      (p) => pick(p, 'metadata.deletionTimestamp', 'metadata.deletionGracePeriodSeconds'),
    );
    await same(
      'the kubelet deletes it with grace 0',
      (s) => s.core.deleteNamespacedPod({ namespace: NS, name: 'p', gracePeriodSeconds: 0 }),
      (p) => pick(p, 'metadata.name'),
    );
    for (const s of [emu, real])
      await eventually(
        `${s.name}: pod gone`,
        () => s.core.readNamespacedPod({ namespace: NS, name: 'p' }),
        (x) => (x as { code?: number }).code === 404,
      );
    await same(
      'an unbound pod is deleted at once',
      async (s) => {
        await s.core.createNamespacedPod({
          namespace: NS,
          body: {
            metadata: { name: 'q' },
            spec: { nodeSelector: { nope: 'x' }, containers: [{ name: 'c', image: 'x' }] },
          },
        });
        await s.core.deleteNamespacedPod({ namespace: NS, name: 'q' });
        return answer(() => s.core.readNamespacedPod({ namespace: NS, name: 'q' }));
      },
      (x) => x,
    );
  });

  test('the scheduler: a pod lands on the Ready node its nodeSelector matches; no match is PodScheduled=False', async () => {
    for (const s of [emu, real])
      for (const [name, role] of [
        ['sched-a', 'a'],
        ['sched-b', 'b'],
      ] as const) {
        await s.core.createNode({ body: { metadata: { name, labels: { role, 'kubernetes.io/hostname': name } } } });
        const node = await s.core.readNode({ name });
        await s.core.replaceNodeStatus({
          name,
          body: {
            ...node,
            status: {
              capacity: { cpu: '4', memory: '8Gi', pods: '110' },
              allocatable: { cpu: '4', memory: '8Gi', pods: '110' },
              conditions: [
                {
                  type: 'Ready',
                  status: 'True',
                  reason: 'KubeletReady',
                  message: 'ready',
                  lastHeartbeatTime: new Date(),
                  lastTransitionTime: new Date(),
                },
              ],
            },
          },
        });
      }
    // The node lifecycle controller takes the not-ready taint off once the node reports Ready.
    for (const s of [emu, real])
      for (const name of ['sched-a', 'sched-b'])
        await eventually(
          `${s.name}: node ${name} untainted`,
          () => s.core.readNode({ name }),
          (n) => !(n as { spec?: { taints?: unknown[] } }).spec?.taints?.length,
        );
    const placed = (s: Side, name: string) =>
      eventually(
        `${s.name}: pod ${name} scheduled or refused`,
        () => s.core.readNamespacedPod({ namespace: NS, name }),
        (p) => !!(p as { status?: { conditions?: unknown[] } }).status?.conditions?.length,
      );
    for (const [name, selector] of [
      ['on-b', { role: 'b' }],
      ['nowhere', { role: 'c' }],
    ] as const)
      await same(
        `pod ${name}`,
        async (s) => {
          await s.core.createNamespacedPod({
            namespace: NS,
            body: { metadata: { name }, spec: { nodeSelector: selector, containers: [{ name: 'c', image: 'x' }] } },
          });
          return placed(s, name);
        },
        (p) => ({
          nodeName: p.spec?.nodeName,
          phase: p.status?.phase,
          conditions: p.status?.conditions?.map((c) => pick(c, 'type', 'status', 'reason', 'message')),
        }),
      );
  });

  test('Deployments: ReplicaSet and pods with owner references, status from Ready pods', async () => {
    const deployment = {
      metadata: { name: 'web', labels: { app: 'web' } },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: { nodeSelector: { role: 'a' }, containers: [{ name: 'c', image: 'x' }] },
        },
      },
    };
    const apps = (s: Side) => s.kc.makeApiClient(AppsV1Api);
    await same(
      'create deployment',
      (s) => apps(s).createNamespacedDeployment({ namespace: NS, body: deployment }),
      (d) => ({ spec: d.spec, generation: d.metadata?.generation }),
    );
    const hash = (v: unknown) =>
      JSON.parse(
        JSON.stringify(v)
          .replace(/web-[a-z0-9]{5,10}(-[a-z0-9]{5})?/g, 'web-<hash>$1')
          .replace(/"pod-template-hash":"[a-z0-9]+"/g, '"pod-template-hash":"<hash>"'),
      );
    const pods = (s: Side) =>
      eventually(
        `${s.name}: the deployment's pod`,
        async () => (await s.core.listNamespacedPod({ namespace: NS, labelSelector: 'app=web' })).items,
        (l) => Array.isArray(l) && l.length === 1 && !!l[0]!.spec?.nodeName,
      );
    await same(
      'its ReplicaSet',
      async (s) => {
        await pods(s);
        return (await apps(s).listNamespacedReplicaSet({ namespace: NS })).items;
      },
      (l) =>
        hash(
          l.map((rs) => ({
            name: rs.metadata?.name,
            labels: rs.metadata?.labels,
            owners: rs.metadata?.ownerReferences?.map((o) =>
              pick(o, 'apiVersion', 'kind', 'name', 'controller', 'blockOwnerDeletion'),
            ),
            replicas: rs.spec?.replicas,
            selector: rs.spec?.selector,
          })),
        ),
    );
    await same(
      'its pod',
      (s) => pods(s),
      (l) =>
        hash(
          l.map((p) => ({
            generateName: p.metadata?.generateName,
            labels: p.metadata?.labels,
            owners: p.metadata?.ownerReferences?.map((o) =>
              pick(o, 'apiVersion', 'kind', 'name', 'controller', 'blockOwnerDeletion'),
            ),
            nodeName: p.spec?.nodeName,
          })),
        ),
    );
    // The kubelet's part: the pod runs and is Ready.
    for (const s of [emu, real]) {
      const [p] = await pods(s);
      await s.core.replaceNamespacedPodStatus({
        namespace: NS,
        name: p!.metadata!.name!,
        body: {
          ...p,
          status: {
            ...p!.status,
            phase: 'Running',
            conditions: [
              ...(p!.status?.conditions ?? []),
              { type: 'Ready', status: 'True', lastTransitionTime: new Date() },
              { type: 'ContainersReady', status: 'True', lastTransitionTime: new Date() },
            ],
          },
        },
      });
    }
    await same(
      'deployment status once its pod is Ready',
      (s) =>
        eventually(
          `${s.name}: deployment available`,
          () => apps(s).readNamespacedDeployment({ namespace: NS, name: 'web' }),
          (d) => (d as { status?: { availableReplicas?: number } }).status?.availableReplicas === 1,
        ),
      (d) => ({
        ...pick(d.status, 'replicas', 'readyReplicas', 'availableReplicas', 'updatedReplicas', 'observedGeneration'),
        conditions: d.status?.conditions
          ?.map((c) => pick(c, 'type', 'status', 'reason'))
          .sort((a, b) => String(a.type).localeCompare(String(b.type))),
      }),
    );
  });

  test('Services and Secrets as the operator writes them', async () => {
    await same(
      'create a ClusterIP service',
      (s) =>
        s.core.createNamespacedService({
          namespace: NS,
          body: {
            metadata: { name: 'svc' },
            spec: { selector: { app: 'web' }, ports: [{ name: 'grpc', port: 50051 }] },
          },
        }),
      (svc) => ({
        ...svc,
        spec: {
          ...svc.spec,
          clusterIP: svc.spec?.clusterIP?.startsWith('10.96.') ? '<10.96/16>' : svc.spec?.clusterIP,
          clusterIPs: svc.spec?.clusterIPs?.map(() => '<ip>'),
        },
      }),
    );
    await same('create a secret with stringData', (s) =>
      s.core.createNamespacedSecret({
        namespace: NS,
        body: { metadata: { name: 'creds', labels: { a: '1' } }, stringData: { user: 'u', password: 'p' } },
      }),
    );
    await same(
      'list secrets by label',
      (s) => s.core.listNamespacedSecret({ namespace: NS, labelSelector: 'a=1' }),
      (l) => l.items.map((x) => ({ name: x.metadata?.name, type: x.type, data: x.data })),
    );
  });

  test('kubectl describe fr', async () => {
    for (const s of [emu, real])
      await s.core.createNamespacedEvent({
        namespace: NS,
        body: {
          metadata: { name: 'r3.described' },
          involvedObject: { apiVersion: 'fednano.io/v1alpha1', kind: 'FederationRound', name: 'r3', namespace: NS },
          reason: 'Started',
          message: 'round started',
          type: 'Normal',
          source: { component: 'fednano-operator' },
          count: 1,
          firstTimestamp: new Date(),
          lastTimestamp: new Date(),
        },
      });
    const describe = async (s: Side) => {
      const r = await s.kubectl('describe', 'fr', 'r3');
      return {
        ...r,
        stdout: r.stdout
          .replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, '<time>')
          .replace(/(Resource Version|UID):\s+\S+/g, '$1: <x>')
          .replace(/\s+\d+s\s+/g, ' <age> ')
          .replace(/[ ]+/g, ' '),
      };
    };
    assert.deepEqual(await describe(emu), await describe(real), 'kubectl describe fr r3');
  });

  test('Leases: MicroTime, create, conflict on a stale update, replace', async () => {
    // A plain Date is written with milliseconds, which MicroTime decoding refuses.
    await same('create a lease with millisecond times', (s) =>
      s.coord.createNamespacedLease({
        namespace: NS,
        body: { metadata: { name: 'ms' }, spec: { holderIdentity: 'a', renewTime: new Date() as never } },
      }),
    );
    const now = () => new V1MicroTime();
    const body = {
      metadata: { name: 'leader' },
      spec: { holderIdentity: 'a', leaseDurationSeconds: 15, acquireTime: now(), renewTime: now() },
    };
    await same('create lease', (s) => s.coord.createNamespacedLease({ namespace: NS, body: body as never }));
    await same('create it again', (s) => s.coord.createNamespacedLease({ namespace: NS, body: body as never }));
    const stale = new Map<string, unknown>();
    for (const s of [emu, real])
      stale.set(s.name, await s.coord.readNamespacedLease({ namespace: NS, name: 'leader' }));
    await same('renew', async (s) => {
      const l = stale.get(s.name) as { spec: object };
      return s.coord.replaceNamespacedLease({
        namespace: NS,
        name: 'leader',
        body: { ...l, spec: { ...l.spec, renewTime: now(), leaseTransitions: 1 } } as never,
      });
    });
    await same('take over with the stale copy', async (s) => {
      const l = stale.get(s.name) as { spec: object };
      return s.coord.replaceNamespacedLease({
        namespace: NS,
        name: 'leader',
        body: { ...l, spec: { ...l.spec, holderIdentity: 'b' } } as never,
      });
    });
  });

  test('Events: core/v1 create as the operator writes them', async () => {
    await same('create event', (s) =>
      s.core.createNamespacedEvent({
        namespace: NS,
        body: {
          metadata: { name: 'r1.1' },
          involvedObject: { apiVersion: 'fednano.io/v1alpha1', kind: 'FederationRound', name: 'r1', namespace: NS },
          reason: 'Started',
          message: 'round started',
          type: 'Normal',
          source: { component: 'fednano-operator' },
          count: 1,
          firstTimestamp: new Date(),
          lastTimestamp: new Date(),
        },
      }),
    );
    await same(
      'list events by involvedObject.name',
      (s) => s.core.listNamespacedEvent({ namespace: NS, fieldSelector: 'involvedObject.name=r1' }),
      (l) => l.items.map((e) => e.reason),
    );
  });
});
