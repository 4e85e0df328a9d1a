import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '@fednano/service-kit';
import { CoordinationV1Api, KubeConfig } from '@kubernetes/client-node';
import { startKubeApi } from '../../test/support/kube-api/index.js';
import { LeaderElector } from './leader.js';

// Leader election against the emulated API server over HTTP: one leader at a time, handover on release.
test('two replicas: one leads; the other takes over when the lease is released', async () => {
  const api = await startKubeApi();
  const log = createLogger('leader-test');
  log.level = 'silent';
  const kc = new KubeConfig();
  kc.loadFromString(api.kubeconfig());
  const opts = {
    namespace: 'default',
    name: 'fednano-operator',
    leaseDurationSeconds: 2,
    renewPeriodMs: 200,
    retryPeriodMs: 100,
  };
  const a = new LeaderElector(kc, { ...opts, identity: 'a' }, log);
  const b = new LeaderElector(kc, { ...opts, identity: 'b' }, log);
  try {
    await a.run(() => assert.fail('a lost the lease it holds'));
    let bLeads = false;
    const bRun = b
      .run(() => {})
      .then(() => {
        bLeads = true;
      });
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(bLeads, false, 'b waits while a renews');
    const lease = await kc
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ name: opts.name, namespace: 'default' });
    assert.equal(lease.spec?.holderIdentity, 'a');
    await a.release();
    await bRun;
    assert.equal(bLeads, true);
    const after = await kc
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ name: opts.name, namespace: 'default' });
    assert.equal(after.spec?.holderIdentity, 'b');
    assert.equal(after.spec?.leaseTransitions, 1);
  } finally {
    await a.release();
    await b.release();
    await api.close();
  }
});
