import assert from 'node:assert/strict';
import { test } from 'node:test';
import { reconcileFederation } from './federation-controller.js';
import type { OperatorSettings } from './resources.js';
import { reconcileRound } from './round-controller.js';
import { FakeKube, FakeRecorder, FakeStore } from './testing.js';
import { API_VERSION, type Federation } from './types.js';

const settings: OperatorSettings = {
  natsUrl: 'nats://nats:4222',
  images: { llmHost: 'llm:1', aggregator: 'agg:1', clientAgent: 'agent:1' },
};
const NS = 'team-a';
const ref = { namespace: NS, federation: 'vqa' };

/** Opens round 1 of a three-client Federation whose roster gives the clients these adapter ranks. */
async function reconciledRound(
  ranks: (number | undefined)[],
  rankMerge?: 'svd' | 'zero-pad',
  strategy: Federation['spec']['strategy'] = { name: 'fedavg' },
) {
  const kube = new FakeKube();
  const store = new FakeStore();
  const deps = { kube, store, recorder: new FakeRecorder(), settings };
  const f: Federation = {
    apiVersion: API_VERSION,
    kind: 'Federation',
    metadata: { name: 'vqa', namespace: NS },
    spec: {
      model: { path: 'models/reference' },
      clients: ranks.map((adapterRank, i) => ({ name: `c${i}`, ...(adapterRank ? { adapterRank } : {}) })),
      adapter: { rank: 8, alpha: 16, ...(rankMerge ? { rankMerge } : {}) },
      strategy,
      training: { localSteps: 5, batchSize: 8, learningRate: 0.003, optimizer: 'adamw' },
      participation: { clientsPerRound: 3 },
    },
  };
  kube.put(f);
  kube.put({
    apiVersion: API_VERSION,
    kind: 'FederationRound',
    metadata: { name: 'r1', namespace: NS },
    spec: { federationRef: { name: 'vqa' }, round: 1 },
  });
  await reconcileFederation(deps, NS, 'vqa');
  await reconcileFederation(deps, NS, 'vqa');
  kube.setAvailable(NS, 'vqa-llm-host');
  kube.setAvailable(NS, 'vqa-aggregator');
  store.initial(ref);
  await reconcileRound(deps, NS, 'r1');
  await reconcileRound(deps, NS, 'r1');
  return { kube, store };
}

const openedRound = async (ranks: (number | undefined)[], rankMerge?: 'svd' | 'zero-pad') =>
  (await reconciledRound(ranks, rankMerge)).store.doc(ref, 1).spec;

test('the round record carries the roster ranks that differ from adapter.rank, and the rank merge', async () => {
  const mixed = await openedRound([4, undefined, 8], 'zero-pad');
  assert.deepEqual(mixed.ranks, { c0: 4 });
  assert.equal(mixed.adapter.rankMerge, 'zero-pad');
  assert.equal(mixed.adapter.rank, 8);
  // Every client at the federation's rank: no ranks, so the round is exactly a homogeneous one.
  assert.equal((await openedRound([undefined, 8, undefined])).ranks, undefined);
});

test('mixed ranks the strategy cannot merge fail the round with the reason, before anything opens', async () => {
  const { kube, store } = await reconciledRound([4, undefined, 8], 'svd', { name: 'median' });
  const r = kube.round(NS, 'r1')!;
  assert.equal(r.status?.phase, 'Failed');
  const ready = r.status?.conditions?.find((c) => c.type === 'Ready');
  assert.equal(ready?.reason, 'InvalidRankMerge');
  assert.match(ready!.message!, /c0 train a rank other than adapter.rank 8.*not 'median'.*zero-pad/);
  assert.equal(store.doc(ref, 1), undefined, 'no round record was written');
  // The same roster with zero-pad merges under any strategy.
  const ok = await reconciledRound([4, undefined, 8], 'zero-pad', { name: 'median' });
  assert.notEqual(ok.kube.round(NS, 'r1')!.status?.phase, 'Failed');
  assert.deepEqual(ok.store.doc(ref, 1).spec.ranks, { c0: 4 });
});
