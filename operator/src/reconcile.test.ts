import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RoundStatus } from '@fednano/wire';
import type { V1Pod } from '@kubernetes/client-node';
import { getCondition } from './conditions.js';
import { autopilotRoundName, reconcileFederation } from './federation-controller.js';
import { aggregatorName, llmHostName, type OperatorSettings } from './resources.js';
import { reconcileRound, resolveParticipants } from './round-controller.js';
import { FakeKube, FakeRecorder, FakeStore } from './testing.js';
import { API_VERSION, type Federation, type FederationRound, FINALIZER, LABELS } from './types.js';

const settings: OperatorSettings = {
  natsUrl: 'nats://nats:4222',
  images: { llmHost: 'llm:1', aggregator: 'agg:1', clientAgent: 'agent:1' },
};
const NS = 'team-a';
const ref = { namespace: NS, federation: 'vqa' };

function federation(extra: Partial<Federation['spec']> = {}): Federation {
  return {
    apiVersion: API_VERSION,
    kind: 'Federation',
    metadata: { name: 'vqa', namespace: NS },
    spec: {
      model: { path: 'models/reference' },
      clients: ['c0', 'c1', 'c2'].map((name) => ({
        name,
        nodeSelector: { 'kubernetes.io/hostname': `edge-${name}` },
        dataVolume: { hostPath: { path: `/data/${name}` } },
      })),
      adapter: { rank: 8, alpha: 16 },
      strategy: { name: 'fisher' },
      training: { localSteps: 5, batchSize: 8, learningRate: 0.003, optimizer: 'adamw' },
      participation: { clientsPerRound: 3 },
      ...extra,
    },
  };
}

function round(name: string, n: number, extra: Partial<FederationRound['spec']> = {}): FederationRound {
  return {
    apiVersion: API_VERSION,
    kind: 'FederationRound',
    metadata: { name, namespace: NS },
    spec: { federationRef: { name: 'vqa' }, round: n, ...extra },
  };
}

function world() {
  const kube = new FakeKube();
  const store = new FakeStore();
  const recorder = new FakeRecorder();
  return { kube, store, recorder, deps: { kube, store, recorder, settings } };
}

describe('Federation reconcile', () => {
  test('adds its finalizer, creates the llm-host, its Service and the aggregator once, and is idempotent', async () => {
    const { kube, deps } = world();
    kube.put(federation());
    await reconcileFederation(deps, NS, 'vqa');
    assert.ok(kube.federation(NS, 'vqa')!.metadata.finalizers?.includes(FINALIZER));
    await reconcileFederation(deps, NS, 'vqa');
    assert.deepEqual(
      kube.calls.filter((c) => c.startsWith('create')),
      [
        `create Deployment/${NS}/vqa-llm-host`,
        `create Service/${NS}/vqa-llm-host`,
        `create Deployment/${NS}/vqa-aggregator`,
      ],
    );
    const llm = kube.deployment(NS, llmHostName(federation()))!;
    const c = llm.spec!.template.spec!.containers[0]!;
    assert.equal(c.resources?.limits?.['nvidia.com/gpu'], '1');
    assert.equal(llm.metadata!.ownerReferences![0]!.kind, 'Federation');
    const f = kube.federation(NS, 'vqa')!;
    assert.equal(f.status?.phase, 'Pending');
    assert.match(
      getCondition(f.status?.conditions, 'Ready')!.message!,
      /waiting for the llm-host, the aggregator, the initial adapter/,
    );
    kube.clearCalls();
    await reconcileFederation(deps, NS, 'vqa');
    assert.deepEqual(kube.calls, [], 'nothing changes, nothing is written');
  });

  test('a spec change replaces only the object that drifted', async () => {
    const { kube, deps } = world();
    kube.put(federation());
    await reconcileFederation(deps, NS, 'vqa');
    await reconcileFederation(deps, NS, 'vqa');
    const f = kube.federation(NS, 'vqa')!;
    f.spec.llmHost = { replicas: 2, gpus: 0 };
    kube.clearCalls();
    await reconcileFederation(deps, NS, 'vqa');
    assert.deepEqual(
      kube.calls.filter((c) => !c.startsWith('status')),
      [`replace Deployment/${NS}/vqa-llm-host`],
    );
    assert.equal(kube.deployment(NS, 'vqa-llm-host')!.spec!.replicas, 2);
  });

  test('rounds: N creates rounds one after another and completes', async () => {
    const { kube, store, deps } = world();
    kube.put(federation({ rounds: 2 }));
    await reconcileFederation(deps, NS, 'vqa');
    await reconcileFederation(deps, NS, 'vqa');
    kube.setAvailable(NS, llmHostName(federation()));
    kube.setAvailable(NS, aggregatorName(federation()));
    store.initial(ref);
    await reconcileFederation(deps, NS, 'vqa');
    assert.ok(kube.round(NS, autopilotRoundName(federation(), 1)));
    assert.equal(kube.federation(NS, 'vqa')!.status?.phase, 'Running');
    await reconcileFederation(deps, NS, 'vqa');
    assert.equal(kube.rounds(NS).length, 1, 'no second round while the first runs');
    kube.round(NS, 'vqa-round-1')!.status = { phase: 'Succeeded', outputAdapter: { object: 'x/round-1', sha256: 'b' } };
    await reconcileFederation(deps, NS, 'vqa');
    assert.equal(kube.rounds(NS).length, 2);
    kube.round(NS, 'vqa-round-2')!.status = { phase: 'Succeeded', outputAdapter: { object: 'x/round-2', sha256: 'c' } };
    await reconcileFederation(deps, NS, 'vqa');
    const f = kube.federation(NS, 'vqa')!;
    assert.equal(kube.rounds(NS).length, 2);
    assert.equal(f.status?.phase, 'Completed');
    assert.equal(f.status?.globalAdapter, 'x/round-2');
  });

  test('spec.evaluation: the aggregator mounts the held-out volume read-only and scores rounds on it', async () => {
    const { kube, deps } = world();
    const heldOut = { persistentVolumeClaim: { claimName: 'vqa-held-out' } };
    kube.put(federation({ evaluation: { dataVolume: heldOut } }));
    await reconcileFederation(deps, NS, 'vqa');
    await reconcileFederation(deps, NS, 'vqa');
    const pod = kube.deployment(NS, aggregatorName(federation()))!.spec!.template.spec!;
    const c = pod.containers[0]!;
    assert.deepEqual(pod.volumes, [{ name: 'evaluation', ...heldOut }]);
    assert.deepEqual(c.volumeMounts, [{ name: 'evaluation', mountPath: '/evaluation', readOnly: true }]);
    const at = c.args!.indexOf('--evaluation-data');
    assert.equal(c.args![at + 1], '/evaluation');
    assert.equal(c.args![c.args!.indexOf('--model') + 1], 'models/reference', 'scored with the federation model');
    // Removing it from the spec takes the flag and the volume away again.
    kube.federation(NS, 'vqa')!.spec.evaluation = undefined;
    await reconcileFederation(deps, NS, 'vqa');
    const plain = kube.deployment(NS, aggregatorName(federation()))!.spec!.template.spec!;
    assert.ok(!plain.containers[0]!.args!.includes('--evaluation-data'));
    assert.equal(plain.volumes, undefined);
  });

  test('lastAccuracy is the accuracy of the last round that succeeded, absent when it was not scored', async () => {
    const { kube, deps } = world();
    kube.put(federation());
    await reconcileFederation(deps, NS, 'vqa');
    const scored = { ...round('r1', 1), status: { phase: 'Succeeded' as const, metrics: { loss: 1, accuracy: 0.62 } } };
    kube.put(scored);
    await reconcileFederation(deps, NS, 'vqa');
    assert.equal(kube.federation(NS, 'vqa')!.status?.lastAccuracy, 0.62);
    kube.put({ ...round('r2', 2), status: { phase: 'Succeeded', metrics: { loss: 0.9 } } });
    await reconcileFederation(deps, NS, 'vqa');
    assert.equal(kube.federation(NS, 'vqa')!.status?.lastAccuracy, undefined, 'no stale accuracy of round 1');
  });

  test('an llm-host that keeps crashing (e.g. a wrong model path) is named in the Ready condition', async () => {
    const { kube, deps, recorder } = world();
    kube.put(federation());
    await reconcileFederation(deps, NS, 'vqa');
    await reconcileFederation(deps, NS, 'vqa');
    kube.put({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'vqa-llm-host-abc',
        namespace: NS,
        labels: { [LABELS.name]: 'fednano-llm-host', [LABELS.federation]: 'vqa' },
      },
      status: {
        phase: 'Running',
        containerStatuses: [
          {
            name: 'llm-host',
            image: 'llm:1',
            imageID: '',
            ready: false,
            restartCount: 3,
            lastState: {
              terminated: { exitCode: 1, message: 'cannot read the model manifest at /models/nope/manifest.json' },
            },
          },
        ],
      },
    } as V1Pod);
    await reconcileFederation(deps, NS, 'vqa');
    const ready = getCondition(kube.federation(NS, 'vqa')!.status?.conditions, 'Ready')!;
    assert.equal(ready.reason, 'LlmHostFailing');
    assert.match(ready.message!, /restarted 3 times; last exit 1: cannot read the model manifest/);
    assert.ok(recorder.events.some((e) => e.reason === 'LlmHostFailing' && e.type === 'Warning'));
  });

  test('deletion runs the finalizer: NATS state removed, then the finalizer', async () => {
    const { kube, store, deps } = world();
    kube.put({
      ...federation(),
      metadata: { name: 'vqa', namespace: NS, finalizers: [FINALIZER], deletionTimestamp: new Date() },
    });
    await reconcileFederation(deps, NS, 'vqa');
    assert.deepEqual(store.forgotten, [`${NS}.vqa.*`]);
    assert.deepEqual(kube.federation(NS, 'vqa')!.metadata.finalizers, []);
  });
});

describe('FederationRound reconcile', () => {
  async function ready(extra: Partial<FederationRound['spec']> = {}) {
    const w = world();
    w.kube.put(federation());
    await reconcileFederation(w.deps, NS, 'vqa');
    await reconcileFederation(w.deps, NS, 'vqa');
    w.kube.setAvailable(NS, 'vqa-llm-host');
    w.kube.setAvailable(NS, 'vqa-aggregator');
    w.store.initial(ref);
    w.kube.put(round('r1', 1, extra));
    await reconcileRound(w.deps, NS, 'r1'); // finalizer
    return w;
  }
  const pods = (kube: FakeKube) =>
    kube
      .pods(NS, { [LABELS.round]: 'r1' })
      .map((p) => p.metadata!.name)
      .sort();

  test('an unknown federation is a condition with a slow requeue, not a hot loop', async () => {
    const { kube, deps } = world();
    kube.put(round('r1', 1));
    const r = await reconcileRound(deps, NS, 'r1');
    assert.equal(r.requeueAfterMs, 30_000);
    const s = kube.round(NS, 'r1')!.status!;
    assert.equal(s.phase, 'Pending');
    assert.deepEqual(
      [getCondition(s.conditions, 'Ready')?.reason, getCondition(s.conditions, 'Ready')?.message],
      ['FederationNotFound', `Federation "vqa" does not exist in ${NS}`],
    );
    assert.equal(s.observedGeneration, 1);
    kube.clearCalls();
    await reconcileRound(deps, NS, 'r1');
    assert.deepEqual(kube.calls, [], 'same state: no write');
  });

  test('clients outside the roster and duplicate round indices fail the round with a reason', async () => {
    const w = await ready({ participants: ['c0', 'c9'] });
    assert.equal(w.kube.round(NS, 'r1')!.status?.phase, 'Failed');
    assert.match(
      getCondition(w.kube.round(NS, 'r1')!.status?.conditions, 'Succeeded')!.message!,
      /not in the roster of vqa: c9/,
    );
    w.kube.put(round('r1-again', 1));
    await reconcileRound(w.deps, NS, 'r1-again');
    assert.equal(getCondition(w.kube.round(NS, 'r1-again')!.status?.conditions, 'Ready')?.reason, 'DuplicateRound');
    assert.ok(w.recorder.events.some((e) => e.reason === 'DuplicateRound' && e.type === 'Warning'));
  });

  test('waits for the federation, then opens the record and creates one pod per participant, once', async () => {
    const w = world();
    w.kube.put(federation());
    w.kube.put(round('r1', 1));
    await reconcileRound(w.deps, NS, 'r1');
    await reconcileRound(w.deps, NS, 'r1');
    assert.equal(getCondition(w.kube.round(NS, 'r1')!.status?.conditions, 'Ready')?.reason, 'WaitingForFederation');
    await reconcileFederation(w.deps, NS, 'vqa');
    await reconcileFederation(w.deps, NS, 'vqa');
    w.kube.setAvailable(NS, 'vqa-llm-host');
    w.kube.setAvailable(NS, 'vqa-aggregator');
    w.store.initial(ref);
    await reconcileRound(w.deps, NS, 'r1');
    const doc = w.store.doc(ref, 1);
    assert.deepEqual(doc.spec.participants, ['c0', 'c1', 'c2']);
    assert.equal(doc.spec.baseAdapter.object, `${NS}/vqa/round-0`);
    assert.equal(doc.spec.dModel, 128);
    assert.deepEqual(pods(w.kube), ['r1-c0-0', 'r1-c1-0', 'r1-c2-0']);
    const pod = w.kube.pods(NS, { [LABELS.client]: 'c1' })[0] as V1Pod;
    assert.deepEqual(pod.spec!.nodeSelector, { 'kubernetes.io/hostname': 'edge-c1' });
    assert.deepEqual(pod.spec!.volumes![0], { name: 'data', hostPath: { path: '/data/c1' } });
    assert.equal(pod.spec!.containers[0]!.securityContext!.runAsNonRoot, true);
    assert.equal(pod.metadata!.ownerReferences![0]!.name, 'r1');
    assert.ok(!pod.spec!.containers[0]!.args!.includes('--nats-creds'), 'no Secret, no credentials');
    assert.equal(w.kube.round(NS, 'r1')!.status?.phase, 'Running');
    w.kube.clearCalls();
    await reconcileRound(w.deps, NS, 'r1');
    assert.deepEqual(
      w.kube.calls.filter((c) => c.startsWith('create')),
      [],
      'no second pod',
    );
  });

  test('a client whose credentials Secret exists gets it mounted and used', async () => {
    const w = await ready();
    w.kube.secrets.add(`${NS}/vqa-c2-nats`);
    await reconcileRound(w.deps, NS, 'r1');
    const pod = w.kube.pods(NS, { [LABELS.client]: 'c2' })[0] as V1Pod;
    const c = pod.spec!.containers[0]!;
    assert.deepEqual(c.args!.slice(-2), ['--nats-creds', '/var/run/secrets/fednano/nats.creds']);
    assert.deepEqual(pod.spec!.volumes!.at(-1), {
      name: 'identity',
      secret: { secretName: 'vqa-c2-nats', defaultMode: 0o400 },
    });
    assert.equal(c.volumeMounts!.at(-1)!.readOnly, true);
  });

  test('a failed pod is retried up to maxRetries, then the client is Failed', async () => {
    const w = await ready({ maxRetries: 1 });
    await reconcileRound(w.deps, NS, 'r1');
    w.kube.setPodPhase(NS, 'r1-c0-0', 'Failed');
    await reconcileRound(w.deps, NS, 'r1');
    assert.ok(pods(w.kube).includes('r1-c0-1'));
    w.kube.setPodPhase(NS, 'r1-c0-1', 'Failed');
    await reconcileRound(w.deps, NS, 'r1');
    assert.ok(!pods(w.kube).includes('r1-c0-2'));
    const c0 = w.kube.round(NS, 'r1')!.status!.clients!.find((c) => c.name === 'c0')!;
    assert.deepEqual([c0.state, c0.restarts], ['Failed', 1]);
    assert.ok(w.recorder.events.some((e) => e.reason === 'ClientRetried'));
  });

  test('status follows the record: counted clients, then Succeeded with the output adapter; leftovers deleted', async () => {
    const w = await ready();
    await reconcileRound(w.deps, NS, 'r1');
    w.kube.setPodPhase(NS, 'r1-c0-0', 'Running');
    const doc = w.store.doc(ref, 1);
    doc.status.accepted.push({ client: 'c1', seq: 4, samples: 10, loss: 1.5, bytes: 1000 });
    doc.status.rejected.push({ client: 'c2', seq: 5, reason: 'base', message: 'trained from another adapter' });
    await reconcileRound(w.deps, NS, 'r1');
    let s = w.kube.round(NS, 'r1')!.status!;
    assert.deepEqual(
      s.clients!.map((c) => c.state),
      ['Training', 'Counted', 'Rejected'],
    );
    assert.deepEqual([s.received, s.rejected, s.expected], [1, 1, 3]);
    doc.status.state = 'Aggregated';
    doc.status.result = { object: `${NS}/vqa/round-1`, sha256: 'f'.repeat(64) };
    doc.status.metrics = { meanTrainLoss: 1.5, meanUpdateBytes: 1000 };
    doc.status.message = 'deadline passed without updates from c0';
    await reconcileRound(w.deps, NS, 'r1');
    s = w.kube.round(NS, 'r1')!.status!;
    assert.equal(s.phase, 'Succeeded');
    assert.equal(s.outputAdapter?.object, `${NS}/vqa/round-1`);
    assert.equal(getCondition(s.conditions, 'Succeeded')?.status, 'True');
    assert.deepEqual(s.metrics, { loss: 1.5, uploadBytes: 1000 });
    assert.ok(!pods(w.kube).includes('r1-c0-0'), 'the still-running pod is deleted');
  });

  /** A round the aggregator has just aggregated, with what it recorded about its evaluation. */
  async function aggregated(w: Awaited<ReturnType<typeof ready>>, evaluation: Partial<RoundStatus>) {
    await reconcileRound(w.deps, NS, 'r1');
    const doc = w.store.doc(ref, 1);
    doc.status.accepted.push({ client: 'c0', seq: 4, samples: 10, loss: 1.25, bytes: 900 });
    doc.status.state = 'Aggregated';
    doc.status.result = { object: `${NS}/vqa/round-1`, sha256: 'e'.repeat(64) };
    doc.status.metrics = { meanTrainLoss: 1.25, meanUpdateBytes: 900 };
    Object.assign(doc.status, evaluation);
    await reconcileRound(w.deps, NS, 'r1');
    return w.kube.round(NS, 'r1')!.status!;
  }

  test("the aggregator's evaluation: accuracy (overall and per type) beside the loss, and an Evaluated condition", async () => {
    const w = await ready();
    const perType = { 'fashion-category': 0.5, 'digit-parity': 0.875 };
    const s = await aggregated(w, {
      evaluation: { examples: 48, accuracy: 0.6875, loss: 0.9, perType, sha256: 'e'.repeat(64) },
    });
    assert.equal(s.phase, 'Succeeded');
    assert.deepEqual(s.metrics, {
      loss: 1.25,
      uploadBytes: 900,
      accuracy: 0.6875,
      accuracyByType: perType,
      evaluatedExamples: 48,
    });
    const evaluated = getCondition(s.conditions, 'Evaluated')!;
    assert.deepEqual([evaluated.status, evaluated.reason], ['True', 'Evaluated']);
    assert.match(evaluated.message!, /accuracy 68\.8% on 48 held-out questions/);
  });

  test('a held-out set the aggregator could not read: the round still Succeeds, without accuracy, and says why', async () => {
    const w = await ready();
    const why = "cannot read the client's data at /evaluation/shard.json: ENOENT";
    const s = await aggregated(w, { evaluationError: why });
    assert.equal(s.phase, 'Succeeded');
    assert.equal(getCondition(s.conditions, 'Succeeded')?.status, 'True');
    assert.equal(s.metrics?.accuracy, undefined);
    assert.equal(s.outputAdapter?.sha256, 'e'.repeat(64), 'the adapter is kept');
    const evaluated = getCondition(s.conditions, 'Evaluated')!;
    assert.deepEqual([evaluated.status, evaluated.reason, evaluated.message], ['False', 'EvaluationFailed', why]);
    assert.ok(w.recorder.events.some((e) => e.reason === 'EvaluationFailed' && e.type === 'Warning'));
  });

  test('no spec.evaluation: the Evaluated condition says how to get an accuracy', async () => {
    const w = await ready();
    const s = await aggregated(w, {});
    const evaluated = getCondition(s.conditions, 'Evaluated')!;
    assert.deepEqual([evaluated.status, evaluated.reason], ['False', 'NoEvaluationSet']);
    assert.match(evaluated.message!, /spec\.evaluation\.dataVolume/);
  });

  test('deleting a round removes its NATS record through the finalizer', async () => {
    const w = await ready();
    await reconcileRound(w.deps, NS, 'r1');
    const r = w.kube.round(NS, 'r1')!;
    r.metadata.deletionTimestamp = new Date();
    await reconcileRound(w.deps, NS, 'r1');
    assert.deepEqual(w.store.forgotten, [`${NS}.vqa.1`]);
    assert.deepEqual(w.kube.round(NS, 'r1')!.metadata.finalizers, []);
  });

  test('participants: explicit, a reproducible fraction, clientsPerRound, or all', () => {
    const f = federation({ participation: { clientsPerRound: 2 } });
    assert.deepEqual(resolveParticipants(f, round('a', 1, { participants: ['c2'] })), ['c2']);
    const two = resolveParticipants(f, round('a', 1));
    assert.equal(two.length, 2);
    assert.deepEqual(resolveParticipants(f, round('b', 1)), two, 'same round, same clients');
    assert.equal(resolveParticipants(f, round('a', 1, { fraction: 1 })).length, 3);
  });
});
