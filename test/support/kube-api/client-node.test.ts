/**
 * The emulated API server driven by the real @kubernetes/client-node: CRUD, conflicts, generation, status
 * subresource, selectors, watch resume / 410 / bookmarks, informers, garbage collection, finalizers, CRD validation
 * and Table output.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  type V1ConfigMap,
  type V1Pod,
  Watch,
} from '@kubernetes/client-node';
import { type KubeApi, type KubeObject, startKubeApi } from './index.js';

const CRDS = ['fednano.io_federations.yaml', 'fednano.io_federationrounds.yaml'].map((f) =>
  fileURLToPath(new URL(`../../../crds/${f}`, import.meta.url)),
);
const GROUP = 'fednano.io';
const VERSION = 'v1alpha1';

interface Status {
  kind: string;
  code: number;
  reason: string;
  message: string;
  details?: { causes?: { field: string; message: string }[] };
}

/** The Status of a failed client-node call. */
async function failure(p: Promise<unknown>): Promise<Status> {
  try {
    await p;
  } catch (e) {
    const body = (e as { body?: unknown }).body;
    const status = (typeof body === 'string' ? JSON.parse(body) : body) as Status;
    assert.equal((e as { code?: number }).code, status.code);
    return status;
  }
  assert.fail('expected the call to fail');
}

const until = async (what: string, check: () => boolean | Promise<boolean>, ms = 3000) => {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

const round = (name: string, spec: Record<string, unknown> = {}) => ({
  apiVersion: `${GROUP}/${VERSION}`,
  kind: 'FederationRound',
  metadata: { name },
  spec: { federationRef: { name: 'f1' }, round: 1, ...spec },
});

let api: KubeApi;
let kc: KubeConfig;
let core: CoreV1Api;
let apps: AppsV1Api;
let custom: CustomObjectsApi;

before(async () => {
  api = await startKubeApi({ crds: CRDS, bookmarkIntervalMs: 50, historyLimit: 50 });
  kc = new KubeConfig();
  kc.loadFromString(api.kubeconfig());
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  custom = kc.makeApiClient(CustomObjectsApi);
});
after(() => api.close());

describe('CRUD with client-node', () => {
  test('create, get, list, update, patch, delete a ConfigMap; metadata is set by the server', async () => {
    const created = await core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'cm1', labels: { app: 'a' } }, data: { k: 'v' } },
    });
    assert.ok(created.metadata?.uid);
    assert.ok(created.metadata?.creationTimestamp);
    assert.match(created.metadata?.resourceVersion ?? '', /^\d+$/);
    const got = await core.readNamespacedConfigMap({ name: 'cm1', namespace: 'default' });
    assert.deepEqual(got.data, { k: 'v' });

    const list = await core.listNamespacedConfigMap({ namespace: 'default' });
    assert.ok(Number(list.metadata?.resourceVersion) >= Number(created.metadata?.resourceVersion));
    assert.ok(list.items.some((c) => c.metadata?.name === 'cm1'));

    got.data = { k: 'v2' };
    const updated = await core.replaceNamespacedConfigMap({ name: 'cm1', namespace: 'default', body: got });
    assert.ok(Number(updated.metadata?.resourceVersion) > Number(got.metadata?.resourceVersion));

    const patched = await core.patchNamespacedConfigMap(
      { name: 'cm1', namespace: 'default', body: { data: { extra: 'x' } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    assert.deepEqual(patched.data, { k: 'v2', extra: 'x' });
    const jsonPatched = await core.patchNamespacedConfigMap({
      name: 'cm1',
      namespace: 'default',
      body: [{ op: 'replace', path: '/data/k', value: 'v3' }],
    });
    assert.equal(jsonPatched.data?.k, 'v3');

    const dup = await failure(
      core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'cm1' } } }),
    );
    assert.equal(dup.code, 409);
    assert.equal(dup.reason, 'AlreadyExists');
    assert.equal(dup.message, 'configmaps "cm1" already exists');

    await core.deleteNamespacedConfigMap({ name: 'cm1', namespace: 'default' });
    const gone = await failure(core.readNamespacedConfigMap({ name: 'cm1', namespace: 'default' }));
    assert.equal(gone.reason, 'NotFound');
    assert.equal(gone.message, 'configmaps "cm1" not found');
  });

  test('generateName, a namespace that does not exist, a bad name', async () => {
    const cm = await core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { generateName: 'gen-' } },
    });
    assert.match(cm.metadata?.name ?? '', /^gen-[a-z0-9]{5}$/);
    const noNs = await failure(
      core.createNamespacedConfigMap({ namespace: 'nope', body: { metadata: { name: 'x' } } }),
    );
    assert.equal(noNs.message, 'namespaces "nope" not found');
    const bad = await failure(
      core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'Bad_Name' } } }),
    );
    assert.equal(bad.code, 422);
    assert.match(
      bad.message,
      /^ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/,
    );
  });

  test('a stale resourceVersion on update is a 409 Conflict with the real message', async () => {
    const conflictsBefore = api.conflictCount;
    await custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: 'default',
      plural: 'federationrounds',
      body: round('stale'),
    });
    const a = (await custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: 'default',
      plural: 'federationrounds',
      name: 'stale',
    })) as KubeObject;
    const b = structuredClone(a);
    (a.spec as Record<string, unknown>).minClients = 1;
    await custom.replaceNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: 'default',
      plural: 'federationrounds',
      name: 'stale',
      body: a,
    });
    (b.spec as Record<string, unknown>).minClients = 2;
    const status = await failure(
      custom.replaceNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: 'default',
        plural: 'federationrounds',
        name: 'stale',
        body: b,
      }),
    );
    assert.equal(status.code, 409);
    assert.equal(status.reason, 'Conflict');
    assert.equal(
      status.message,
      'Operation cannot be fulfilled on federationrounds.fednano.io "stale": the object has been modified; please apply your changes to the latest version and try again',
    );
    assert.equal(api.conflictCount, conflictsBefore + 1);
    assert.ok(api.requests.update >= 2);
  });

  test('leases: create and replace with the resourceVersion (leader election)', async () => {
    const coordination = kc.makeApiClient(CoordinationV1Api);
    const lease = await coordination.createNamespacedLease({
      namespace: 'default',
      body: { metadata: { name: 'leader' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15 } },
    });
    lease.spec!.holderIdentity = 'b';
    const taken = await coordination.replaceNamespacedLease({ name: 'leader', namespace: 'default', body: lease });
    assert.equal(taken.spec?.holderIdentity, 'b');
    const again = await failure(
      coordination.replaceNamespacedLease({ name: 'leader', namespace: 'default', body: lease }),
    );
    assert.equal(again.code, 409);
  });
});

describe('generation and the status subresource', () => {
  test('generation counts spec changes only; the main endpoint ignores status, /status ignores the rest', async () => {
    const args = { group: GROUP, version: VERSION, namespace: 'default', plural: 'federationrounds', name: 'gen' };
    const created = (await custom.createNamespacedCustomObject({
      ...args,
      body: { ...round('gen'), status: { phase: 'Running' } },
    })) as KubeObject;
    assert.equal(created.metadata.generation, 1);
    assert.equal(created.status, undefined, 'status is dropped on create');

    const spec = structuredClone(created);
    (spec.spec as Record<string, unknown>).minClients = 1;
    spec.status = { phase: 'Failed' };
    const afterSpec = (await custom.replaceNamespacedCustomObject({ ...args, body: spec })) as KubeObject;
    assert.equal(afterSpec.metadata.generation, 2);
    assert.equal(afterSpec.status, undefined, 'status changes through the main endpoint are ignored');

    const status = structuredClone(afterSpec);
    status.status = { phase: 'Running', expected: 3 };
    (status.spec as Record<string, unknown>).minClients = 3;
    const afterStatus = (await custom.replaceNamespacedCustomObjectStatus({ ...args, body: status })) as KubeObject;
    assert.equal(afterStatus.metadata.generation, 2);
    assert.deepEqual(afterStatus.status, { phase: 'Running', expected: 3 });
    assert.equal(
      (afterStatus.spec as Record<string, unknown>).minClients,
      1,
      'spec changes through /status are ignored',
    );

    const labels = structuredClone(afterStatus);
    labels.metadata.labels = { a: 'b' };
    const afterLabels = (await custom.replaceNamespacedCustomObject({ ...args, body: labels })) as KubeObject;
    assert.equal(afterLabels.metadata.generation, 2);
    assert.deepEqual(afterLabels.metadata.labels, { a: 'b' });

    // a no-op update keeps the resourceVersion (and sends no watch event)
    const noop = (await custom.replaceNamespacedCustomObject({ ...args, body: afterLabels })) as KubeObject;
    assert.equal(noop.metadata.resourceVersion, afterLabels.metadata.resourceVersion);

    const bad = structuredClone(afterLabels);
    bad.status = { phase: 'Bogus' };
    const invalid = await failure(custom.replaceNamespacedCustomObjectStatus({ ...args, body: bad }));
    assert.equal(
      invalid.message,
      'FederationRound.fednano.io "gen" is invalid: status.phase: Unsupported value: "Bogus": supported values: "Pending", "Running", "Aggregating", "Succeeded", "Failed"',
    );
  });

  test('pods: status reset on create, status via /status, spec immutability', async () => {
    const pod = await core.createNamespacedPod({
      namespace: 'default',
      body: {
        metadata: { name: 'p1' },
        spec: { containers: [{ name: 'c', image: 'busybox' }] },
        status: { phase: 'Running' },
      },
    });
    assert.equal(pod.status?.phase, 'Pending');
    assert.equal(pod.spec?.restartPolicy, 'Always');
    assert.equal(pod.spec?.containers[0]?.imagePullPolicy, 'Always');
    pod.status = { phase: 'Running', podIP: '10.0.0.9' };
    const running = await core.replaceNamespacedPodStatus({ name: 'p1', namespace: 'default', body: pod });
    assert.equal(running.status?.phase, 'Running');
    running.spec!.containers[0]!.name = 'renamed';
    const forbidden = await failure(core.replaceNamespacedPod({ name: 'p1', namespace: 'default', body: running }));
    assert.equal(forbidden.code, 422);
    assert.match(forbidden.message, /pod updates may not change fields other than/);
  });
});

describe('selectors', () => {
  test('label selectors: =, ==, !=, in, notin, exists, !exists; field selectors', async () => {
    const labels: Record<string, Record<string, string>> = {
      s1: { app: 'a', tier: 'web' },
      s2: { app: 'b', tier: 'db' },
      s3: { app: 'c' },
    };
    for (const [name, l] of Object.entries(labels))
      await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name, labels: l } } });
    const names = async (labelSelector?: string, fieldSelector?: string) =>
      (await core.listNamespacedConfigMap({ namespace: 'default', labelSelector, fieldSelector })).items
        .map((c) => c.metadata?.name)
        .filter((n) => n?.startsWith('s'))
        .sort();
    assert.deepEqual(await names('app=a'), ['s1']);
    assert.deepEqual(await names('app==b'), ['s2']);
    assert.deepEqual(await names('app!=a,app'), ['s2', 's3']);
    assert.deepEqual(await names('app in (a, c)'), ['s1', 's3']);
    assert.deepEqual(await names('app notin (a),tier'), ['s2']);
    assert.deepEqual(await names('!tier'), ['s3']);
    assert.deepEqual(await names(undefined, 'metadata.name=s2'), ['s2']);
    assert.deepEqual(await names(undefined, 'metadata.name!=s2'), ['s1', 's3']);
    const bad = await failure(core.listNamespacedConfigMap({ namespace: 'default', fieldSelector: 'data.x=1' }));
    assert.equal(bad.code, 400);
    const page = await core.listNamespacedConfigMap({ namespace: 'default', labelSelector: 'app', limit: 2 });
    assert.equal(page.items.length, 2);
    assert.ok(page.metadata?._continue);
    const rest = await core.listNamespacedConfigMap({
      namespace: 'default',
      labelSelector: 'app',
      limit: 2,
      _continue: page.metadata?._continue,
    });
    assert.deepEqual(
      rest.items.map((c) => c.metadata?.name),
      ['s3'],
    );
  });

  test('pods by spec.nodeName and status.phase', async () => {
    for (const [name, node] of [
      ['fp1', 'n1'],
      ['fp2', 'n2'],
    ])
      await core.createNamespacedPod({
        namespace: 'default',
        body: { metadata: { name }, spec: { nodeName: node, containers: [{ name: 'c', image: 'x:1' }] } },
      });
    const onN1 = await core.listPodForAllNamespaces({ fieldSelector: 'spec.nodeName=n1' });
    assert.deepEqual(
      onN1.items.map((p) => p.metadata?.name),
      ['fp1'],
    );
    const pending = await core.listNamespacedPod({
      namespace: 'default',
      fieldSelector: 'status.phase=Pending,spec.nodeName=n2',
    });
    assert.deepEqual(
      pending.items.map((p) => p.metadata?.name),
      ['fp2'],
    );
  });
});

describe('watch', () => {
  test('resume from a resourceVersion, selector transitions, bookmarks, 410 after compaction', async () => {
    const list = await core.listNamespacedConfigMap({ namespace: 'default' });
    const from = list.metadata!.resourceVersion!;
    await core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'w1', labels: { watch: 'yes' } } },
    });
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'w2' } } });
    const w1 = await core.readNamespacedConfigMap({ name: 'w1', namespace: 'default' });
    w1.metadata!.labels = { watch: 'no' };
    await core.replaceNamespacedConfigMap({ name: 'w1', namespace: 'default', body: w1 });

    const events: { type: string; name?: string; rv?: string }[] = [];
    const watch = new Watch(kc);
    let ended = false;
    const req = await watch.watch(
      '/api/v1/namespaces/default/configmaps',
      { resourceVersion: from, labelSelector: 'watch=yes', allowWatchBookmarks: true },
      (type, obj: V1ConfigMap) => events.push({ type, name: obj.metadata?.name, rv: obj.metadata?.resourceVersion }),
      () => {
        ended = true;
      },
    );
    await until('a bookmark', () => events.some((e) => e.type === 'BOOKMARK'));
    req.abort();
    // replayed from history: w1 added, then DELETED for this watch when its label stopped matching; w2 never matched
    assert.deepEqual(
      events.filter((e) => e.type !== 'BOOKMARK').map((e) => `${e.type} ${e.name}`),
      ['ADDED w1', 'DELETED w1'],
    );
    const bookmark = events.find((e) => e.type === 'BOOKMARK')!;
    assert.ok(Number(bookmark.rv) >= Number(from));

    api.compactHistory();
    const expired: { type: string; obj: { code?: number; reason?: string } }[] = [];
    let done: unknown = 'not yet';
    await watch.watch(
      '/api/v1/namespaces/default/configmaps',
      { resourceVersion: from },
      (type, obj) => expired.push({ type, obj }),
      (err) => {
        done = err;
      },
    );
    await until('the expired watch to end', () => done !== 'not yet');
    assert.equal(expired[0]?.type, 'ERROR');
    assert.equal(expired[0]?.obj.code, 410);
    assert.equal(expired[0]?.obj.reason, 'Expired');
    assert.equal(done, null, 'the stream ended normally after the ERROR event');
    await until('the first watch to end', () => ended);
  });

  test('watch without resourceVersion sends ADDED for existing objects; timeoutSeconds ends it', async () => {
    await core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'initial', labels: { init: '1' } } },
    });
    const events: string[] = [];
    let ended = false;
    await new Watch(kc).watch(
      '/api/v1/namespaces/default/configmaps',
      { labelSelector: 'init', timeoutSeconds: 1 },
      (type, obj: V1ConfigMap) => events.push(`${type} ${obj.metadata?.name}`),
      () => {
        ended = true;
      },
    );
    await until('the timeout', () => ended, 3000);
    assert.deepEqual(events, ['ADDED initial']);
  });

  test('makeInformer recovers from 410 by relisting', async () => {
    const path = `/apis/${GROUP}/${VERSION}/namespaces/default/federationrounds`;
    const informer = makeInformer<KubernetesObject>(
      kc,
      path,
      () =>
        custom.listNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace: 'default',
          plural: 'federationrounds',
        }) as never,
    );
    const errors: unknown[] = [];
    informer.on('error', (e) => errors.push(e));
    await informer.start();
    await custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: 'default',
      plural: 'federationrounds',
      body: round('inf1'),
    });
    await until('the informer to see inf1', () => informer.get('inf1', 'default') !== undefined);

    // the informer's watch ends (apiserver restart); meanwhile changes happen and the history is compacted away
    const listsBefore = api.requests.list;
    api.closeWatches();
    api.compactHistory();
    await custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: 'default',
      plural: 'federationrounds',
      body: round('inf2'),
    });
    api.compactHistory();
    await until('the informer to relist and see inf2', () => informer.get('inf2', 'default') !== undefined);
    assert.ok(api.requests.list > listsBefore, 'the informer relisted after the 410');
    assert.deepEqual(errors, []);
    await informer.stop();
  });
});

describe('garbage collection and finalizers', () => {
  test('deleting an owner deletes its dependents, recursively (background)', async () => {
    const dep = await apps.createNamespacedDeployment({
      namespace: 'default',
      body: {
        metadata: { name: 'owner' },
        spec: {
          selector: { matchLabels: { app: 'o' } },
          template: { metadata: { labels: { app: 'o' } }, spec: { containers: [{ name: 'c', image: 'x:1' }] } },
        },
      },
    });
    const ref = (o: { metadata?: { name?: string; uid?: string } }, kind: string, apiVersion: string) => ({
      apiVersion,
      kind,
      name: o.metadata!.name!,
      uid: o.metadata!.uid!,
      controller: true,
    });
    const child = await core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'child', ownerReferences: [ref(dep, 'Deployment', 'apps/v1')] } },
    });
    await core.createNamespacedPod({
      namespace: 'default',
      body: {
        metadata: { name: 'grandchild', ownerReferences: [ref(child, 'ConfigMap', 'v1')] },
        spec: { containers: [{ name: 'c', image: 'x:1' }] },
      },
    });
    await apps.deleteNamespacedDeployment({ name: 'owner', namespace: 'default', propagationPolicy: 'Background' });
    await until(
      'the dependents to be collected',
      () => !api.get('pods', 'default', 'grandchild') && !api.get('configmaps', 'default', 'child'),
    );
  });

  test('a dependent with finalizers waits; foreground deletion waits for blocking dependents', async () => {
    const owner = await core.createNamespacedConfigMap({
      namespace: 'default',
      body: { metadata: { name: 'fg-owner' } },
    });
    await core.createNamespacedConfigMap({
      namespace: 'default',
      body: {
        metadata: {
          name: 'fg-child',
          finalizers: ['example.com/hold'],
          ownerReferences: [
            {
              apiVersion: 'v1',
              kind: 'ConfigMap',
              name: 'fg-owner',
              uid: owner.metadata!.uid!,
              blockOwnerDeletion: true,
            },
          ],
        },
      },
    });
    await core.deleteNamespacedConfigMap({ name: 'fg-owner', namespace: 'default', propagationPolicy: 'Foreground' });
    await api.idle();
    const waiting = api.get('configmaps', 'default', 'fg-owner');
    assert.ok(waiting?.metadata.deletionTimestamp, 'the owner waits with a deletionTimestamp');
    assert.deepEqual(waiting?.metadata.finalizers, ['foregroundDeletion']);
    const child = await core.readNamespacedConfigMap({ name: 'fg-child', namespace: 'default' });
    assert.ok(child.metadata?.deletionTimestamp, 'the child is being deleted, held by its finalizer');

    child.metadata!.finalizers = [];
    await core.replaceNamespacedConfigMap({ name: 'fg-child', namespace: 'default', body: child });
    await until(
      'child and owner to be gone',
      () => !api.get('configmaps', 'default', 'fg-child') && !api.get('configmaps', 'default', 'fg-owner'),
    );
  });

  test('finalizers keep a deleted custom resource until an update removes them', async () => {
    const args = { group: GROUP, version: VERSION, namespace: 'default', plural: 'federationrounds', name: 'fin' };
    await custom.createNamespacedCustomObject({
      ...args,
      body: { ...round('fin'), metadata: { name: 'fin', finalizers: ['fednano.io/cleanup'] } },
    });
    await custom.deleteNamespacedCustomObject(args);
    const deleting = (await custom.getNamespacedCustomObject(args)) as KubeObject;
    assert.ok(deleting.metadata.deletionTimestamp);
    assert.equal(deleting.metadata.generation, 2, 'setting deletionTimestamp bumps the generation');
    deleting.metadata.finalizers = [...(deleting.metadata.finalizers ?? []), 'another'];
    const noNew = await failure(custom.replaceNamespacedCustomObject({ ...args, body: deleting }));
    assert.match(noNew.message, /no new finalizers can be added if the object is being deleted/);
    deleting.metadata.finalizers = [];
    await custom.replaceNamespacedCustomObject({ ...args, body: deleting });
    const gone = await failure(custom.getNamespacedCustomObject(args));
    assert.equal(gone.message, 'federationrounds.fednano.io "fin" not found');
  });
});

describe('CRD validation', () => {
  const create = (body: object) =>
    custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: 'default',
      plural: 'federationrounds',
      body,
    });

  test('defaults are applied and unknown fields pruned', async () => {
    const r = (await create({
      ...round('defaults', { unknownField: 1, training: { localSteps: 5, bogus: true } }),
      extra: 'x',
    })) as KubeObject;
    const spec = r.spec as Record<string, unknown>;
    assert.equal(spec.deadlineSeconds, 3600);
    assert.equal(spec.maxRetries, 2);
    assert.equal(spec.unknownField, undefined);
    assert.deepEqual(spec.training, { localSteps: 5 });
    assert.equal((r as Record<string, unknown>).extra, undefined);
  });

  test('a bad enum, a bound, a missing field and a CEL rule are 422 Invalid', async () => {
    const status = await failure(create({ ...round('bad'), spec: { round: 0 } }));
    assert.equal(status.code, 422);
    assert.equal(status.reason, 'Invalid');
    assert.equal(
      status.message,
      'FederationRound.fednano.io "bad" is invalid: [spec.federationRef: Required value, spec.round: Invalid value: 0: spec.round in body should be greater than or equal to 1]',
    );
    assert.deepEqual(
      status.details?.causes?.map((c) => c.field),
      ['spec.federationRef', 'spec.round'],
    );

    const cel = await failure(create(round('cel', { participants: ['a'], minClients: 2 })));
    assert.equal(
      cel.message,
      'FederationRound.fednano.io "cel" is invalid: spec: Invalid value: "object": minClients must not exceed the number of participants',
    );

    const fed = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'Federation',
      metadata: { name: 'badenum' },
      spec: {
        model: { path: 'm' },
        clients: [{ name: 'a' }],
        adapter: { rank: 8, alpha: 16 },
        strategy: { name: 'bogus' },
        training: { localSteps: 1, batchSize: 1, learningRate: 0.1, optimizer: 'adamw' },
        participation: { clientsPerRound: 1 },
      },
    };
    const enumErr = await failure(
      custom.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: 'default',
        plural: 'federations',
        body: fed,
      }),
    );
    assert.match(
      enumErr.message,
      /spec\.strategy\.name: Unsupported value: "bogus": supported values: "fedavg", "fedprox"/,
    );
  });

  test('transition rules (oldSelf) run on update only', async () => {
    const args = { group: GROUP, version: VERSION, namespace: 'default', plural: 'federationrounds', name: 'immut' };
    const r = (await create(round('immut'))) as KubeObject;
    (r.spec as Record<string, unknown>).round = 2;
    const status = await failure(custom.replaceNamespacedCustomObject({ ...args, body: r }));
    assert.equal(
      status.message,
      'FederationRound.fednano.io "immut" is invalid: spec: Invalid value: "object": round is immutable',
    );
  });

  test('merge patches of custom resources are validated; strategic merge patch is 415', async () => {
    const args = { group: GROUP, version: VERSION, namespace: 'default', plural: 'federationrounds', name: 'patched' };
    await create(round('patched'));
    const merged = (await custom.patchNamespacedCustomObject(
      { ...args, body: { spec: { minClients: 3 } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as KubeObject;
    assert.equal((merged.spec as Record<string, unknown>).minClients, 3);
    assert.equal(merged.metadata.generation, 2);
    const smp = await failure(
      custom.patchNamespacedCustomObject(
        { ...args, body: { spec: { minClients: 4 } } },
        setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
      ),
    );
    assert.equal(smp.code, 415);
    const status = (await custom.patchNamespacedCustomObjectStatus(
      { ...args, body: { status: { phase: 'Running' } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as KubeObject;
    assert.deepEqual(status.status, { phase: 'Running' });
  });
});

describe('Table output and limits', () => {
  test('Accept as=Table returns the printer columns', async () => {
    const args = { group: GROUP, version: VERSION, namespace: 'default', plural: 'federationrounds', name: 'tbl' };
    const r = (await custom.createNamespacedCustomObject({ ...args, body: round('tbl') })) as KubeObject;
    r.status = { phase: 'Succeeded', received: 3, expected: 4, metrics: { loss: 0.25, accuracy: 0.9 } };
    await custom.replaceNamespacedCustomObjectStatus({ ...args, body: r });
    const res = await fetch(`${api.url}/apis/${GROUP}/${VERSION}/namespaces/default/federationrounds?labelSelector=`, {
      headers: { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json' },
    });
    const table = (await res.json()) as {
      kind: string;
      columnDefinitions: { name: string; type: string }[];
      rows: { cells: unknown[]; object: { kind: string; metadata: { name: string } } }[];
    };
    assert.equal(table.kind, 'Table');
    assert.deepEqual(
      table.columnDefinitions.map((c) => c.name),
      ['Name', 'Federation', 'Round', 'Phase', 'Ready', 'Expected', 'Loss', 'Accuracy', 'Age'],
    );
    const row = table.rows.find((x) => x.object.metadata.name === 'tbl')!;
    assert.equal(row.object.kind, 'PartialObjectMetadata');
    assert.deepEqual(row.cells.slice(0, 8), ['tbl', 'f1', 1, 'Succeeded', 3, 4, 0.25, 0.9]);
    assert.match(String(row.cells[8]), /^\d+s$/);

    const pods = await fetch(`${api.url}/api/v1/namespaces/default/pods`, {
      headers: { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' },
    });
    const podTable = (await pods.json()) as { columnDefinitions: { name: string }[] };
    assert.deepEqual(
      podTable.columnDefinitions.slice(0, 5).map((c) => c.name),
      ['Name', 'Ready', 'Status', 'Restarts', 'Age'],
    );
  });

  test('discovery lists the custom resources with short names and categories', async () => {
    const res = await fetch(`${api.url}/apis/${GROUP}/${VERSION}`);
    const list = (await res.json()) as { resources: { name: string; shortNames?: string[]; categories?: string[] }[] };
    const fr = list.resources.find((r) => r.name === 'federationrounds')!;
    assert.deepEqual(fr.shortNames, ['fedround', 'fr']);
    assert.deepEqual(fr.categories, ['fednano']);
    assert.ok(list.resources.some((r) => r.name === 'federationrounds/status'));
  });

  test('bodies over the limit are 413', async () => {
    const big = 'x'.repeat(3 * 1024 * 1024 + 10);
    const status = await failure(
      core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'big' }, data: { big } } }),
    );
    assert.equal(status.code, 413);
  });

  test('the scheduler option binds pods to a matching Ready node', async () => {
    const sched = await startKubeApi({ schedulePods: true });
    try {
      const skc = new KubeConfig();
      skc.loadFromString(sched.kubeconfig());
      const c = skc.makeApiClient(CoreV1Api);
      await c.createNamespacedPod({
        namespace: 'default',
        body: {
          metadata: { name: 'gpu' },
          spec: { nodeSelector: { gpu: 'yes' }, containers: [{ name: 'c', image: 'x:1' }] },
        },
      });
      const scheduled = (p?: V1Pod) => p?.status?.conditions?.find((x) => x.type === 'PodScheduled');
      await until(
        'PodScheduled=False',
        () => scheduled(sched.get<V1Pod>('pods', 'default', 'gpu'))?.status === 'False',
      );
      const ready = { type: 'Ready', status: 'True' };
      await c.createNode({ body: { metadata: { name: 'cpu-node' }, status: { conditions: [ready] } } });
      await c.createNode({
        body: { metadata: { name: 'gpu-node', labels: { gpu: 'yes' } }, status: { conditions: [ready] } },
      });
      await until(
        'the pod to be bound',
        () => sched.get<V1Pod>('pods', 'default', 'gpu')?.spec?.nodeName === 'gpu-node',
      );
      assert.equal(scheduled(sched.get<V1Pod>('pods', 'default', 'gpu'))?.status, 'True');
    } finally {
      await sched.close();
    }
  });
});

describe('options: deployment controller, graceful pod deletion; the generic object API', () => {
  test('deploymentController: a Deployment gets a ReplicaSet and pods; status follows pod readiness', async () => {
    const d = await startKubeApi({ deploymentController: true, schedulePods: true });
    try {
      const dkc = new KubeConfig();
      dkc.loadFromString(d.kubeconfig());
      const dapps = dkc.makeApiClient(AppsV1Api);
      const dcore = dkc.makeApiClient(CoreV1Api);
      await dcore.createNode({
        body: { metadata: { name: 'n1' }, status: { conditions: [{ type: 'Ready', status: 'True' }] } },
      });
      const template = (image: string) => ({
        metadata: { labels: { app: 'llm' } },
        spec: { containers: [{ name: 'llm', image }] },
      });
      await dapps.createNamespacedDeployment({
        namespace: 'default',
        body: {
          metadata: { name: 'llm' },
          spec: { replicas: 2, selector: { matchLabels: { app: 'llm' } }, template: template('llm:1') },
        },
      });
      const pods = () => d.list<V1Pod>('pods', { namespace: 'default', labelSelector: 'app=llm' });
      await until('two scheduled pods', () => pods().length === 2 && pods().every((p) => p.spec?.nodeName === 'n1'));
      assert.equal(d.list('replicasets', { namespace: 'default' }).length, 1);
      // a kubelet would do this
      for (const p of pods()) {
        d.patch(
          'pods',
          'default',
          p.metadata!.name!,
          { status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } },
          { subresource: 'status' },
        );
      }
      await until('the deployment to be available', async () => {
        const dep = await dapps.readNamespacedDeployment({ name: 'llm', namespace: 'default' });
        return dep.status?.availableReplicas === 2 && dep.status.observedGeneration === 1;
      });
      // a new template replaces the pods; deleting the deployment collects everything
      const dep = await dapps.readNamespacedDeployment({ name: 'llm', namespace: 'default' });
      dep.spec!.template = template('llm:2');
      await dapps.replaceNamespacedDeployment({ name: 'llm', namespace: 'default', body: dep });
      await until(
        'new pods',
        () => pods().length === 2 && pods().every((p) => p.spec?.containers[0]?.image === 'llm:2'),
      );
      await dapps.deleteNamespacedDeployment({ name: 'llm', namespace: 'default' });
      await until('everything to be collected', () => pods().length === 0 && d.list('replicasets').length === 0);
    } finally {
      await d.close();
    }
  });

  test('podGracefulDeletion: a bound pod stays Terminating until deleted with grace 0', async () => {
    const g = await startKubeApi({ podGracefulDeletion: true });
    try {
      const gkc = new KubeConfig();
      gkc.loadFromString(g.kubeconfig());
      const gcore = gkc.makeApiClient(CoreV1Api);
      await gcore.createNamespacedPod({
        namespace: 'default',
        body: { metadata: { name: 'p' }, spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'x:1' }] } },
      });
      await gcore.deleteNamespacedPod({ name: 'p', namespace: 'default' });
      const terminating = await gcore.readNamespacedPod({ name: 'p', namespace: 'default' });
      assert.ok(terminating.metadata?.deletionTimestamp);
      assert.equal(terminating.metadata?.deletionGracePeriodSeconds, 30);
      terminating.status = { phase: 'Running' };
      await gcore.replaceNamespacedPodStatus({ name: 'p', namespace: 'default', body: terminating });
      assert.ok(g.get('pods', 'default', 'p'), 'a status update does not finish the deletion');
      await gcore.deleteNamespacedPod({ name: 'p', namespace: 'default', gracePeriodSeconds: 0 });
      assert.equal(g.get('pods', 'default', 'p'), undefined);
    } finally {
      await g.close();
    }
  });

  test('KubernetesObjectApi (discovery-driven); server-side apply is refused', async () => {
    const objects = KubernetesObjectApi.makeApiClient(kc);
    const created = await objects.create(round('generic') as KubernetesObject);
    assert.equal(created.metadata?.generation, 1);
    const replaced = await objects.replace({
      ...created,
      spec: { federationRef: { name: 'f1' }, round: 1, minClients: 1 },
    } as KubernetesObject);
    assert.equal(replaced.metadata?.generation, 2);
    await objects.delete(replaced, undefined, undefined, undefined, undefined, 'Background');
    assert.equal(api.get('fr', 'default', 'generic'), undefined);

    // Server-side apply is not emulated (415): no suite uses it, and a merge would not be what the real server does.
    const ssa = await failure(
      custom.patchNamespacedCustomObject(
        {
          group: GROUP,
          version: VERSION,
          namespace: 'default',
          plural: 'federationrounds',
          name: 'ssa',
          body: round('ssa'),
          fieldManager: 'test',
        },
        setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
      ),
    );
    assert.equal(ssa.code, 415);
  });
});
