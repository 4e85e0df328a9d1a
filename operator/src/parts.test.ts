import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { strictJsonSchema } from '@fednano/core';
import { Ajv } from 'ajv';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Service } from 'kubernetes-models/v1/Service';
import { parse } from 'yaml';
import { setCondition } from './conditions.js';
import {
  aggregatorDeployment,
  clientAgentPod,
  issuedClientIdentity,
  llmHostDeployment,
  llmHostService,
} from './resources.js';
import { API_VERSION, type Federation, type FederationRound } from './types.js';
import { WorkQueue } from './workqueue.js';

const crdSchema = (file: string) => {
  const crd = parse(readFileSync(fileURLToPath(new URL(`../../crds/${file}`, import.meta.url)), 'utf8'));
  return strictJsonSchema(crd.spec.versions[0].schema.openAPIV3Schema);
};

// Fully populated examples: they type-check against types.ts and must validate against the CRD schemas with
// unknown fields refused, so every field the TypeScript types name exists in crds/.
const fed: Federation = {
  apiVersion: API_VERSION,
  kind: 'Federation',
  metadata: { name: 'vqa', namespace: 'default', uid: 'u1' },
  spec: {
    model: { path: 'models/reference', sha256: 'a'.repeat(64) },
    llmHost: {
      image: 'i',
      replicas: 1,
      gpus: 1,
      nodeSelector: { gpu: 'yes' },
      tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists' }],
      resources: {},
    },
    aggregator: { image: 'i', resources: {} },
    clients: [{ name: 'c0', nodeSelector: { edge: 'c0' }, dataVolume: { hostPath: { path: '/d' } }, image: 'i' }],
    evaluation: { dataVolume: { persistentVolumeClaim: { claimName: 'held-out' } } },
    adapter: { rank: 8, alpha: 16 },
    strategy: { name: 'fisher' },
    training: {
      localSteps: 5,
      batchSize: 8,
      learningRate: 0.01,
      optimizer: 'adamw',
      momentum: 0,
      weightDecay: 0,
      clipNorm: 1,
      fisherSamples: 8,
    },
    participation: { clientsPerRound: 1, minClients: 1 },
    rounds: 3,
    updateEncoding: 'float32',
  },
  status: {
    observedGeneration: 1,
    phase: 'Ready',
    currentRound: 1,
    clients: 1,
    lastAccuracy: 0.5,
    globalAdapter: 'x',
    conditions: [
      {
        type: 'Ready',
        status: 'True',
        observedGeneration: 1,
        lastTransitionTime: '2026-01-01T00:00:00Z',
        reason: 'R',
        message: 'm',
      },
    ],
  },
};
const round: FederationRound = {
  apiVersion: API_VERSION,
  kind: 'FederationRound',
  metadata: { name: 'r1', namespace: 'default', uid: 'u2' },
  spec: {
    federationRef: { name: 'vqa' },
    round: 1,
    participants: ['c0'],
    minClients: 1,
    deadlineSeconds: 60,
    maxRetries: 1,
    training: { localSteps: 1, batchSize: 1, learningRate: 0.1 },
  },
  status: {
    observedGeneration: 1,
    phase: 'Succeeded',
    expected: 1,
    received: 1,
    rejected: 0,
    startTime: '2026-01-01T00:00:00Z',
    completionTime: '2026-01-01T00:01:00Z',
    outputAdapter: { object: 'o', sha256: 's' },
    metrics: {
      loss: 1,
      accuracy: 0.5,
      accuracyByType: { 'fashion-category': 0.75 },
      evaluatedExamples: 40,
      uploadBytes: 10,
    },
    clients: [{ name: 'c0', state: 'Counted', restarts: 0, message: 'ok' }],
    conditions: [{ type: 'Succeeded', status: 'True', reason: 'Aggregated' }],
  },
};

test('the TypeScript types match the CRD schemas', () => {
  const ajv = new Ajv({ allErrors: true, strict: false });
  for (const [file, example] of [
    ['fednano.io_federations.yaml', fed],
    ['fednano.io_federationrounds.yaml', round],
  ] as const) {
    const validate = ajv.compile(crdSchema(file));
    const plain = JSON.parse(JSON.stringify(example));
    assert.ok(validate(plain), `${file}: ${ajv.errorsText(validate.errors)}`);
  }
});

test('every object the operator creates validates against the Kubernetes schemas', () => {
  const settings = { natsUrl: 'nats://n:4222', images: { llmHost: 'a', aggregator: 'b', clientAgent: 'c' } };
  new Deployment(llmHostDeployment(fed, settings) as never).validate();
  new Deployment(aggregatorDeployment(fed, settings) as never).validate();
  new Service(llmHostService(fed) as never).validate();
  new Pod(JSON.parse(JSON.stringify(clientAgentPod(fed, round, fed.spec.clients[0]!, 0, settings)))).validate();
  new Pod(
    JSON.parse(
      JSON.stringify(
        clientAgentPod(fed, round, fed.spec.clients[0]!, 1, settings, {
          secret: 'vqa-c0-nats',
          nats: true,
          tls: false,
        }),
      ),
    ),
  ).validate();
  // With operator-issued identities: mounted Secrets and TLS/NATS flags on every part.
  const secure = {
    ...settings,
    security: { natsAccounts: { namespace: 'fednano', name: 'nats-accounts' }, mtls: true },
  };
  const host = llmHostDeployment(fed, secure);
  new Deployment(host as never).validate();
  const hostArgs = host.spec!.template.spec!.containers[0]!.args!.join(' ');
  assert.match(
    hostArgs,
    /--tls-client-ca \/var\/run\/secrets\/fednano\/ca.crt --federation default\/vqa --revoked-serials/,
  );
  const agg = aggregatorDeployment(fed, secure);
  new Deployment(agg as never).validate();
  assert.equal(agg.spec!.template.spec!.volumes![0]!.secret!.secretName, 'vqa-aggregator-identity');
  const pod = clientAgentPod(fed, round, fed.spec.clients[0]!, 0, secure, issuedClientIdentity(fed, 'c0', secure));
  new Pod(JSON.parse(JSON.stringify(pod))).validate();
  assert.equal(pod.spec!.volumes!.find((v) => v.name === 'identity')!.secret!.secretName, 'vqa-c0-identity');
  assert.match(
    pod.spec!.containers[0]!.args!.join(' '),
    /--nats-creds .*nats.creds .*--tls-server-name vqa-llm-host\.default\.svc\.cluster\.local$/,
  );
  assert.throws(() =>
    new Pod({ metadata: { name: 'x' }, spec: { containers: [{ name: 'c', image: 1 }] } } as never).validate(),
  );
});

test('conditions: lastTransitionTime moves only when the status changes', () => {
  const t0 = new Date('2026-01-01T00:00:00Z');
  const t1 = new Date('2026-01-01T00:05:00Z');
  let c = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'A' }, t0);
  c = setCondition(c, { type: 'Ready', status: 'False', reason: 'B', message: 'still waiting' }, t1);
  assert.equal(c[0]!.lastTransitionTime, t0.toISOString());
  assert.equal(c[0]!.reason, 'B');
  c = setCondition(c, { type: 'Ready', status: 'True', reason: 'C' }, t1);
  assert.equal(c[0]!.lastTransitionTime, t1.toISOString());
  assert.equal(c.length, 1);
});

test('work queue: per-key dedupe, no concurrent processing of a key, backoff on failure', async () => {
  const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 40 });
  q.add('a');
  q.add('a');
  q.add('b');
  assert.equal(q.depth, 2);
  const k = await q.get();
  assert.equal(k, 'a');
  q.add('a'); // while processing: queued again only after done()
  assert.equal(q.depth, 1);
  q.done('a');
  assert.equal(q.depth, 2);
  assert.deepEqual(
    [q.addRateLimited('x'), q.addRateLimited('x'), q.addRateLimited('x'), q.addRateLimited('x')],
    [10, 20, 40, 40],
  );
  q.forget('x');
  assert.equal(q.retries('x'), 0);
  q.shutDown();
  const idle = new WorkQueue();
  const waiting = idle.get();
  idle.shutDown();
  assert.equal(await waiting, undefined, 'shutDown releases waiting workers');
});

test('every pod the operator creates is hardened: non-root, read-only root, no capabilities, RuntimeDefault seccomp', () => {
  const settings = { natsUrl: 'nats://n:4222', images: { llmHost: 'a', aggregator: 'b', clientAgent: 'c' } };
  const secure = { ...settings, security: { natsAccounts: { namespace: 'n', name: 'a' }, mtls: true } };
  const podSpecs = [settings, secure].flatMap((s) => [
    llmHostDeployment(fed, s).spec!.template.spec!,
    aggregatorDeployment(fed, s).spec!.template.spec!,
    clientAgentPod(fed, round, fed.spec.clients[0]!, 0, s, issuedClientIdentity(fed, 'c0', s)).spec!,
  ]);
  assert.equal(podSpecs.length, 6);
  for (const spec of podSpecs) {
    assert.equal(spec.securityContext?.runAsNonRoot, true);
    assert.equal(spec.securityContext?.seccompProfile?.type, 'RuntimeDefault');
    assert.ok(!spec.hostNetwork && !spec.hostPID && !spec.hostIPC);
    for (const c of spec.containers) {
      assert.deepEqual(c.securityContext, {
        runAsNonRoot: true,
        runAsUser: 65532,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
      // Identity Secrets are mounted read-only and readable by the owner only.
      for (const m of c.volumeMounts ?? []) if (m.name === 'identity') assert.equal(m.readOnly, true);
    }
    for (const v of spec.volumes ?? []) if (v.secret) assert.equal(v.secret.defaultMode, 0o400);
  }
});
