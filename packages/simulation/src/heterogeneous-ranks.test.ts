import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { ConfigError, checkConfig, type SimulationConfig } from './config.js';
import { simulate } from './simulate.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** A tiny federation of the quickstart: 3 clients, 2 rounds. */
async function tiny(): Promise<SimulationConfig> {
  const c = parse(await readFile(`${ROOT}examples/quickstart.yaml`, 'utf8')) as SimulationConfig;
  c.metadata.name = 'ranks';
  c.spec.model.path = `${ROOT}models/reference`;
  c.spec.rounds = 2;
  c.spec.training.localSteps = 6;
  c.spec.training.fisherSamples = 16;
  c.spec.participation.clientsPerRound = 3;
  c.spec.simulation.clients = 3;
  c.spec.simulation.data.examplesPerClient = 32;
  c.spec.simulation.evaluation.testImagesPerDomain = 16;
  return c;
}
const refused = async (change: (c: SimulationConfig) => void, pattern: RegExp) => {
  const c = await tiny();
  change(c);
  assert.throws(
    () => checkConfig(c, 'ranks.yaml'),
    (e: unknown) => e instanceof ConfigError && pattern.test(e.message),
  );
};

describe('heterogeneous client ranks in simulate', () => {
  test('config: ranks within the global rank, federated only, a strategy the merge can weigh', async () => {
    await refused(
      (c) => (c.spec.simulation.adapterRanks = [4, 32]),
      /adapterRanks: 32 exceed spec\.adapter\.rank \(16\)/,
    );
    await refused((c) => {
      c.spec.simulation.adapterRanks = [4, 16];
      c.spec.simulation.method = 'centralized';
    }, /adapterRanks applies to method federated only/);
    await refused((c) => {
      c.spec.simulation.adapterRanks = [4, 16];
      c.spec.strategy = { name: 'median' };
    }, /spec\.adapter\.rankMerge: rank merge svd works with strategies fedavg, fedprox and fisher/);
    await refused((c) => (c.spec.simulation.adapterRanks = [0]), /adapterRanks\.0: must be >= 1/);
    await refused(
      (c) => Object.assign(c.spec.adapter, { rankMerge: 'stack' }),
      /spec\.adapter\.rankMerge: must be one of svd, zero-pad/,
    );
    const ok = await tiny();
    ok.spec.simulation.adapterRanks = [4, 16];
    ok.spec.strategy = { name: 'median' };
    ok.spec.adapter.rankMerge = 'zero-pad';
    assert.doesNotThrow(() => checkConfig(ok));
  });

  test('mixed ranks 4/8/16 train, upload less for low ranks, and are deterministic; all rank 16 is unchanged', async () => {
    const plain = await tiny();
    const base = await simulate(checkConfig(plain));
    const same = await tiny();
    same.spec.simulation.adapterRanks = [16];
    const sameResult = await simulate(checkConfig(same));
    assert.deepEqual(
      sameResult.rounds.map((r) => [r.accuracy, r.loss, r.uploadBytesPerClient]),
      base.rounds.map((r) => [r.accuracy, r.loss, r.uploadBytesPerClient]),
    );
    for (const merge of ['svd', 'zero-pad'] as const) {
      const c = await tiny();
      c.spec.simulation.adapterRanks = [4, 8, 16];
      c.spec.adapter.rankMerge = merge;
      const a = await simulate(checkConfig(c));
      assert.deepEqual(
        a.clients.map((x) => x.rank),
        [4, 8, 16],
      );
      // Mean upload: (4 + 8 + 16) / 3 of rank 16's tensors (plus framing), weights and Fisher alike.
      const ratio = a.rounds[1]!.uploadBytesPerClient / base.rounds[1]!.uploadBytesPerClient;
      assert.ok(Math.abs(ratio - 28 / 48) < 0.02, `${merge}: upload ratio ${ratio}`);
      assert.ok(
        a.rounds.slice(1).every((r) => Number.isFinite(r.accuracy) && r.loss < a.rounds[0]!.loss),
        JSON.stringify(a.rounds.map((r) => r.loss)),
      );
      const again = await simulate(checkConfig(c));
      assert.deepEqual(
        again.rounds.map((r) => r.accuracy),
        a.rounds.map((r) => r.accuracy),
      );
    }
  });
});
