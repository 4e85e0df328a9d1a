import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { AdapterWeights } from '@fednano/core';
import { parse } from 'yaml';
import { attackFisher, attackWeights, chooseAdversaries } from './adversary.js';
import { ConfigError, checkConfig, type SimulationConfig } from './config.js';

const w = (o: Record<string, number[]>): AdapterWeights =>
  new Map(Object.entries(o).map(([k, v]) => [k, Float32Array.from(v)]));
const plain = (m: AdapterWeights) => Object.fromEntries([...m].map(([k, v]) => [k, [...v]]));
const norm = (m: AdapterWeights, base: AdapterWeights) =>
  Math.sqrt([...m].reduce((s, [k, v]) => s + v.reduce((t, x, i) => t + (x - base.get(k)![i]!) ** 2, 0), 0));

// Δ = trained − global = { a: [1, −1], b: [3] }, ‖Δ‖ = √11.
const GLOBAL = w({ a: [1, 2], b: [0] });
const TRAINED = w({ a: [2, 1], b: [3] });

describe('attack transforms', () => {
  test('scale sends global + s·Δ', () => {
    assert.deepEqual(plain(attackWeights(GLOBAL, TRAINED, { attack: 'scale', scale: 10 }, 0)), {
      a: [11, -8],
      b: [30],
    });
    // Default s = 10.
    assert.deepEqual(plain(attackWeights(GLOBAL, TRAINED, { attack: 'scale' }, 0)), { a: [11, -8], b: [30] });
  });

  test('sign-flip sends global − s·Δ', () => {
    assert.deepEqual(plain(attackWeights(GLOBAL, TRAINED, { attack: 'sign-flip', scale: 1 }, 0)), {
      a: [0, 3],
      b: [-3],
    });
    assert.deepEqual(plain(attackWeights(GLOBAL, TRAINED, { attack: 'sign-flip', scale: 2 }, 0)), {
      a: [-1, 4],
      b: [-6],
    });
  });

  test('random sends noise of norm s·‖Δ‖, seeded, unrelated to Δ', () => {
    const r = attackWeights(GLOBAL, TRAINED, { attack: 'random', scale: 2 }, 7);
    assert.ok(Math.abs(norm(r, GLOBAL) - 2 * Math.sqrt(11)) < 1e-5, `${norm(r, GLOBAL)}`);
    assert.deepEqual(plain(attackWeights(GLOBAL, TRAINED, { attack: 'random', scale: 2 }, 7)), plain(r));
    assert.notDeepEqual(plain(attackWeights(GLOBAL, TRAINED, { attack: 'random', scale: 2 }, 8)), plain(r));
    // In many dimensions the noise is nearly orthogonal to the honest update (|cos| ~ 1/√n).
    const n = 4096;
    const g = w({ x: new Array(n).fill(0) });
    const t = w({ x: Array.from({ length: n }, (_, i) => (i % 2 ? 0.01 : -0.02)) });
    const x = attackWeights(g, t, { attack: 'random', scale: 10 }, 1).get('x')!;
    const d = t.get('x')!;
    let dot = 0;
    for (let i = 0; i < n; i++) dot += x[i]! * d[i]!;
    const cos = dot / (norm(w({ x: [...x] }), g) * norm(t, g));
    assert.ok(Math.abs(cos) < 0.1, `cos ${cos}`);
    assert.ok(Math.abs(norm(w({ x: [...x] }), g) / norm(t, g) - 10) < 1e-4);
    // A client that did not move sends nothing.
    assert.deepEqual(plain(attackWeights(GLOBAL, GLOBAL, { attack: 'random' }, 3)), plain(GLOBAL));
  });

  test('bad inputs', () => {
    assert.throws(() => attackWeights(GLOBAL, TRAINED, { attack: 'scale', scale: 0 }, 0), /scale must be > 0/);
    assert.throws(() => attackWeights(GLOBAL, w({ a: [1, 2] }), { attack: 'scale' }, 0), /'b' is missing/);
    assert.throws(() => attackWeights(GLOBAL, TRAINED, { attack: 'krum' as never }, 0), /unknown attack 'krum'/);
  });

  test('a poisoned Fisher diagonal is the honest one times fisherScale', () => {
    const f = w({ a: [0.5, 0], b: [2] });
    assert.deepEqual(plain(attackFisher(f, 1000)), { a: [500, 0], b: [2000] });
    assert.equal(attackFisher(f), f);
    assert.throws(() => attackFisher(f, -1), /fisherScale must be > 0/);
  });

  test('the Byzantine clients follow from the seed', () => {
    const a = chooseAdversaries(10, 2, 0);
    assert.equal(a.length, 2);
    assert.ok(a[0]! < a[1]! && a[0]! >= 0 && a[1]! < 10, `${a}`);
    assert.deepEqual(chooseAdversaries(10, 2, 0), a);
    const seen = new Set(Array.from({ length: 20 }, (_, s) => chooseAdversaries(10, 2, s).join(',')));
    assert.ok(seen.size > 5, 'different seeds pick different clients');
    assert.deepEqual(chooseAdversaries(10, 0, 0), []);
    assert.deepEqual(chooseAdversaries(3, 3, 5), [0, 1, 2]);
    assert.throws(() => chooseAdversaries(10, 11, 0), /need 0\.\.10 clients, got 11/);
  });
});

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
describe('spec.simulation.adversaries', () => {
  const quickstart = async () => parse(await readFile(`${ROOT}examples/quickstart.yaml`, 'utf8')) as SimulationConfig;
  const refused = async (change: (c: SimulationConfig) => void, pattern: RegExp) => {
    const c = await quickstart();
    change(c);
    assert.throws(
      () => checkConfig(c, 'byz.yaml'),
      (e: unknown) => e instanceof ConfigError && pattern.test(e.message),
    );
  };

  test('a valid section is accepted', async () => {
    const c = await quickstart();
    c.spec.simulation.adversaries = { clients: 2, attack: 'sign-flip', scale: 5, fisherScale: 100 };
    assert.deepEqual(checkConfig(c).spec.simulation.adversaries, c.spec.simulation.adversaries);
  });
  test('errors name the field', async () => {
    await refused(
      (c) => (c.spec.simulation.adversaries = { clients: 2, attack: 'krum' as never }),
      /byz\.yaml: spec\.simulation\.adversaries\.attack: must be one of scale, sign-flip, random/,
    );
    await refused(
      (c) => (c.spec.simulation.adversaries = { clients: 2, attack: 'scale', scale: -1 }),
      /spec\.simulation\.adversaries\.scale: must be > 0/,
    );
    await refused(
      (c) => (c.spec.simulation.adversaries = { clients: 2, attack: 'scale', factor: 3 } as never),
      /spec\.simulation\.adversaries: unknown field 'factor'/,
    );
    await refused(
      (c) => (c.spec.simulation.adversaries = { clients: 11, attack: 'random' }),
      /adversaries\.clients \(11\) exceeds spec\.simulation\.clients \(10\)/,
    );
    await refused((c) => {
      c.spec.simulation.adversaries = { clients: 2, attack: 'random' };
      c.spec.simulation.method = 'centralized';
    }, /only method federated sends updates/);
    await refused((c) => {
      c.spec.simulation.adversaries = { clients: 2, attack: 'random', fisherScale: 10 };
      c.spec.strategy = { name: 'median' };
    }, /fisherScale applies only to strategy fisher/);
  });
});
