import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { test } from 'node:test';
import { natsIdentityFromSeed, peerIdentity } from '@fednano/wire';
import type { V1Secret } from '@kubernetes/client-node';
import { reconcileFederation } from './federation-controller.js';
import { identitySecrets, reconcileIdentities, type SecuritySettings, syncNatsAccounts } from './identities.js';
import type { OperatorSettings } from './resources.js';
import { FakeKube, FakeRecorder, FakeStore } from './testing.js';
import { API_VERSION, type Federation, FINALIZER } from './types.js';

const NS = 'team';
const security: SecuritySettings = {
  natsAccounts: { namespace: 'fednano-system', name: 'nats-accounts' },
  mtls: true,
  certificateLifetimeMs: 3_600_000,
};

function federation(name: string, clients: string[]): Federation {
  return {
    apiVersion: API_VERSION,
    kind: 'Federation',
    metadata: { name, namespace: NS, uid: `uid-${name}` },
    spec: {
      model: { path: 'models/reference' },
      clients: clients.map((c) => ({ name: c })),
      adapter: { rank: 8, alpha: 16 },
      strategy: { name: 'fedavg' },
      training: { localSteps: 1, batchSize: 1, learningRate: 0.001, optimizer: 'adamw' },
      participation: {},
    },
  } as Federation;
}

const data = (s: V1Secret | undefined) =>
  Object.fromEntries(Object.entries(s?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
const secretOf = async (kube: FakeKube, name: string, ns = NS) => data(await kube.readSecret(ns, name));

test('issues NATS users and certificates per party, each Secret holding only its own', async () => {
  const kube = new FakeKube();
  const f = federation('vqa', ['c0', 'c1']);
  const out = await reconcileIdentities(kube, f, security);
  assert.deepEqual(out.written.sort(), [
    'nats-accounts',
    'vqa-aggregator-identity',
    'vqa-c0-identity',
    'vqa-c1-identity',
    'vqa-ca',
    'vqa-llm-host-tls',
    'vqa-nats-identities',
  ]);
  const ca = await secretOf(kube, identitySecrets.ca(f));
  const c0 = await secretOf(kube, identitySecrets.client(f, 'c0'));
  assert.deepEqual(Object.keys(c0).sort(), ['ca.crt', 'nats.creds', 'tls.crt', 'tls.key']);
  const cert = new X509Certificate(c0['tls.crt']!);
  assert.ok(cert.checkIssued(new X509Certificate(ca['tls.crt']!)));
  assert.ok(cert.verify(new X509Certificate(ca['tls.crt']!).publicKey));
  assert.deepEqual(peerIdentity({ subjectaltname: cert.subjectAltName! }), {
    namespace: NS,
    federation: 'vqa',
    role: 'client',
    client: 'c0',
  });
  const host = await secretOf(kube, identitySecrets.llmHost(f));
  assert.match(new X509Certificate(host['tls.crt']!).subjectAltName!, /DNS:vqa-llm-host\.team\.svc\.cluster\.local/);
  assert.equal(host['revoked-serials'], '');
  // The accounts config lists public keys only: every party's, and no seed.
  const accounts = (await secretOf(kube, 'nats-accounts', 'fednano-system'))['accounts.conf']!;
  const seeds = await secretOf(kube, identitySecrets.nats(f));
  assert.deepEqual(Object.keys(seeds).sort(), ['aggregator', 'client.c0', 'client.c1', 'operator']);
  for (const seed of Object.values(seeds)) {
    assert.ok(accounts.includes(natsIdentityFromSeed(seed).publicKey));
    assert.ok(!accounts.includes(seed.trim()));
  }
  assert.equal(natsIdentityFromSeed(c0['nats.creds']!).seed, seeds['client.c0']);
  assert.deepEqual(Object.keys(await secretOf(kube, identitySecrets.aggregator(f))), ['nats.creds']);
  // Owned by the Federation (garbage-collected with it), except the cluster-wide accounts Secret.
  assert.equal((await kube.readSecret(NS, 'vqa-c0-identity'))!.metadata!.ownerReferences![0]!.name, 'vqa');
});

test('is idempotent, and renews certificates only when a third of their lifetime is left', async () => {
  const kube = new FakeKube();
  const f = federation('vqa', ['c0']);
  const t0 = Date.now();
  const first = await reconcileIdentities(kube, f, security, t0);
  assert.ok(first.renewInMs! <= (2 / 3) * 3_600_000 && first.renewInMs! > (2 / 3) * 3_600_000 - 120_000);
  const before = await secretOf(kube, identitySecrets.client(f, 'c0'));
  kube.clearCalls();
  assert.deepEqual((await reconcileIdentities(kube, f, security, t0 + 60_000)).written, []);
  assert.deepEqual(
    kube.calls.filter((c) => !c.startsWith('get')),
    [],
  );
  const later = await reconcileIdentities(kube, f, security, t0 + (2 / 3) * 3_600_000 + 1000);
  assert.ok(later.written.includes('vqa-c0-identity') && later.written.includes('vqa-llm-host-tls'));
  const after = await secretOf(kube, identitySecrets.client(f, 'c0'));
  assert.notEqual(after['tls.crt'], before['tls.crt']);
  assert.equal(after['nats.creds'], before['nats.creds']); // NATS identities do not rotate with certificates
  assert.equal(after['ca.crt'], before['ca.crt']);
});

test('a client that leaves the roster loses its Secret and NATS user, and its certificate is revoked', async () => {
  const kube = new FakeKube();
  await reconcileIdentities(kube, federation('vqa', ['c0', 'c1']), security);
  const c1 = await secretOf(kube, 'vqa-c1-identity');
  const serial = new X509Certificate(c1['tls.crt']!).serialNumber;
  const c1Key = natsIdentityFromSeed(c1['nats.creds']!).publicKey;
  const out = await reconcileIdentities(kube, federation('vqa', ['c0']), security);
  assert.deepEqual(out.removed, ['vqa-c1-identity']);
  assert.equal(await kube.readSecret(NS, 'vqa-c1-identity'), undefined);
  assert.match((await secretOf(kube, 'vqa-llm-host-tls'))['revoked-serials']!, new RegExp(`^${serial} # c1 until `));
  assert.ok(!(await secretOf(kube, 'nats-accounts', 'fednano-system'))['accounts.conf']!.includes(c1Key));
  assert.deepEqual(Object.keys(await secretOf(kube, 'vqa-nats-identities')).sort(), [
    'aggregator',
    'client.c0',
    'operator',
  ]);
  // Re-admitted later: a new identity, not the revoked one.
  await reconcileIdentities(kube, federation('vqa', ['c0', 'c1']), security);
  assert.notEqual(new X509Certificate((await secretOf(kube, 'vqa-c1-identity'))['tls.crt']!).serialNumber, serial);
  // Once the revoked certificate would have expired anyway, its line leaves the list.
  await reconcileIdentities(kube, federation('vqa', ['c0', 'c1']), security, Date.now() + 2 * 3_600_000);
  assert.doesNotMatch((await secretOf(kube, 'vqa-llm-host-tls'))['revoked-serials']!, new RegExp(serial));
});

test('the accounts config covers every federation, and drops a deleted one', async () => {
  const kube = new FakeKube();
  await reconcileIdentities(kube, federation('alpha', ['a0']), security);
  await reconcileIdentities(kube, federation('beta', ['b0']), security);
  const conf = () => secretOf(kube, 'nats-accounts', 'fednano-system').then((d) => d['accounts.conf']!);
  assert.match(await conf(), /"fednano-team-alpha"[\s\S]*"fednano-team-beta"/);
  await syncNatsAccounts(kube, security.natsAccounts!, { namespace: NS, federation: 'alpha' });
  assert.doesNotMatch(await conf(), /fednano-team-alpha/);
  assert.match(await conf(), /fednano-team-beta/);
});

test('Federation reconcile issues identities before the Deployments that mount them, and says when NATS lags', async () => {
  const kube = new FakeKube();
  const store = new FakeStore();
  const recorder = new FakeRecorder();
  const settings: OperatorSettings = {
    natsUrl: 'nats://nats:4222',
    images: { llmHost: 'l', aggregator: 'a', clientAgent: 'c' },
    security,
  };
  const { NatsAccountPending } = await import('./round-store.js');
  store.read = async () => {
    throw new NatsAccountPending('NATS does not know account fednano-team-vqa yet');
  };
  const f = federation('vqa', ['c0']);
  f.metadata.finalizers = [FINALIZER];
  kube.put(f);
  await reconcileFederation({ kube, store, recorder, settings }, NS, 'vqa');
  const creates = kube.calls.filter((c) => c.startsWith('create'));
  assert.ok(
    creates.indexOf(`create Secret/${NS}/vqa-llm-host-tls`) < creates.indexOf(`create Deployment/${NS}/vqa-llm-host`),
  );
  const ready = kube.federation(NS, 'vqa')!.status!.conditions!.find((c) => c.type === 'Ready')!;
  assert.equal(ready.reason, 'WaitingForNatsAccount');
  assert.match(ready.message!, /NATS does not know account fednano-team-vqa/);
  assert.ok(recorder.events.some((e) => e.reason === 'IdentityIssued' && /vqa-c0-identity/.test(e.message)));
});
