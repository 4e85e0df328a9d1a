import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type AdapterWeights,
  adapterSha256,
  adapterShapes,
  createStrategy,
  encodeUpdate,
  initAdapters,
  projectAdapter,
  UpdateRejected,
} from '@fednano/core';
import type { RoundSpec } from '@fednano/wire';
import { RoundCollection } from './round-collection.js';

const D = 8;
const RANK = 4;
const base = initAdapters(D, { rank: RANK, alpha: 8 }, 1);
const sha256 = adapterSha256(base, adapterShapes(D, RANK));
const spec: RoundSpec = {
  namespace: 'test',
  federation: 'ranks',
  round: 1,
  participants: ['full', 'small', 'liar'],
  minClients: 1,
  deadline: new Date(Date.now() + 60_000).toISOString(),
  baseAdapter: { object: 'adapter-0', sha256 },
  adapter: { rank: RANK, alpha: 8, rankMerge: 'zero-pad' },
  ranks: { small: 2, liar: 2 },
  dModel: D,
  strategy: { name: 'fedavg' },
  training: { steps: 1, batchSize: 1, learningRate: 0.1, optimizer: 'sgd', fisherSamples: 1 },
  seeds: {},
  updateEncoding: 'float32',
};
const settings = { dModel: D, adapter: { rank: RANK, alpha: 8 }, merge: 'zero-pad' as const };
const encode = (client: string, weights: AdapterWeights, rank?: number) =>
  encodeUpdate(
    { ...spec, clientId: client, baseAdapterSha256: sha256, sampleCount: 10, weights, ...(rank ? { rank } : {}) },
    { shapes: adapterShapes(D, rank ?? RANK) },
  );
const refusal = (reason: string, pattern: RegExp) => (e: unknown) =>
  e instanceof UpdateRejected && e.reason === reason && pattern.test(e.message);

describe('round collection with per-client ranks', () => {
  test('accepts each client at its roster rank and merges them; refuses other ranks with reason rank', () => {
    const c = new RoundCollection(spec, createStrategy({ name: 'fedavg' }), base, 1 << 20);
    assert.equal(c.shapes['image.A']![1], RANK, 'the base adapter stays at the federation rank');
    const small = projectAdapter(base, 2, settings);
    c.add('small', encode('small', small, 2));
    c.add('full', encode('full', base));
    // The roster says 2; an update of the federation's rank (declared or not) is refused, as is a rank above it.
    assert.throws(() => c.add('liar', encode('liar', base)), refusal('rank', /this client's rank is 2/));
    assert.throws(
      () => c.add('liar', encode('liar', initAdapters(D, { rank: 5, alpha: 8 }, 2), 5)),
      refusal('rank', /adapter rank 5 exceeds the federation's rank 4/),
    );
    // Untouched clients of both ranks: the global adapter comes back.
    const out = c.finish();
    for (const [k, v] of base)
      assert.ok(
        v.every((x, i) => Math.abs(x - out.get(k)![i]!) < 1e-6),
        k,
      );
  });

  test('a round without per-client ranks refuses a declared rank', () => {
    const { ranks: _, ...plain } = spec;
    const c = new RoundCollection(plain, createStrategy({ name: 'fedavg' }), base, 1 << 20);
    assert.throws(
      () => c.add('small', encode('small', projectAdapter(base, 2, settings), 2)),
      refusal('rank', /has no per-client ranks/),
    );
  });
});
