import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { accuracyChart } from './chart.js';
import { ConfigError, checkConfig, loadConfig, parseConfig, type SimulationConfig } from './config.js';
import { simulate } from './simulate.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const QUICKSTART = `${ROOT}examples/quickstart.yaml`;

async function quickstart(): Promise<SimulationConfig> {
  return parse(await readFile(QUICKSTART, 'utf8')) as SimulationConfig;
}
const bad = (change: (c: SimulationConfig) => void, pattern: RegExp) => async () => {
  const c = await quickstart();
  change(c);
  assert.throws(
    () => checkConfig(c, 'test.yaml'),
    (e: unknown) => e instanceof ConfigError && pattern.test(e.message),
  );
};

describe('simulation config', () => {
  test('the examples validate', async () => {
    const c = await loadConfig(QUICKSTART);
    assert.equal(c.metadata.name, 'quickstart');
  });
  test(
    'unknown fields, wrong types and enums name the field',
    bad((c) => Object.assign(c.spec.adapter, { rnk: 4 }), /spec\.adapter: unknown field 'rnk'/),
  );
  test(
    'bounds',
    bad((c) => (c.spec.adapter.rank = 0), /spec\.adapter\.rank: must be >= 1/),
  );
  test(
    'enums',
    bad(
      (c) => ((c.spec.strategy as { name: string }).name = 'krum'),
      /spec\.strategy\.name: must be one of fedavg, fedprox/,
    ),
  );
  test(
    'participation needs exactly one of clientsPerRound and fraction',
    bad((c) => (c.spec.participation.fraction = 0.5), /exactly one of clientsPerRound or fraction/),
  );
  test(
    'more clients per round than clients',
    bad(
      (c) => (c.spec.participation.clientsPerRound = 11),
      /clientsPerRound \(11\) exceeds spec\.simulation\.clients \(10\)/,
    ),
  );
  test(
    'fedprox needs mu',
    bad((c) => (c.spec.strategy = { name: 'fedprox' }), /spec\.strategy\.mu is required for fedprox/),
  );
  test(
    'dirichlet needs alpha',
    bad((c) => delete c.spec.simulation.data.partition.alpha, /partition\.alpha is required for dirichlet/),
  );
  test('malformed YAML, a missing file and an oversized file fail with one clear line', async () => {
    assert.throws(() => parseConfig('spec: [unclosed', 'broken.yaml'), /broken\.yaml: not valid YAML/);
    await assert.rejects(loadConfig('/nonexistent.yaml'), /\/nonexistent\.yaml: cannot read the config \(ENOENT\)/);
    assert.throws(() => parseConfig('a'.repeat(2 << 20), 'big.yaml'), /big\.yaml: larger than/);
    assert.throws(
      () => parseConfig('apiVersion: v1\nkind: Pod\n', 'pod.yaml'),
      /pod\.yaml: .*apiVersion: must be equal to constant/,
    );
  });
});

describe('simulate', () => {
  test('a small federation: accuracy rises above zero-shot, updates travel through the codec, results are deterministic', async () => {
    const c = await quickstart();
    c.metadata.name = 'test';
    c.spec.model.path = `${ROOT}models/reference`;
    c.spec.rounds = 3;
    c.spec.training.localSteps = 15;
    c.spec.participation.clientsPerRound = 3;
    c.spec.simulation.clients = 4;
    c.spec.simulation.data.examplesPerClient = 120;
    c.spec.simulation.evaluation.testImagesPerDomain = 60;
    const rounds: number[] = [];
    const a = await simulate(c, { onRound: (r) => rounds.push(r.round) });
    assert.deepEqual(rounds, [0, 1, 2, 3]);
    const [zero, ...trained] = a.rounds;
    assert.ok(a.final.accuracy > zero!.accuracy + 0.1, `zero-shot ${zero!.accuracy}, final ${a.final.accuracy}`);
    // Adapters (4 x 128 x 16 floats) plus their Fisher diagonal, plus framing.
    for (const r of trained)
      assert.ok(
        r.uploadBytesPerClient > 2 * 8192 * 4 && r.uploadBytesPerClient < 2 * 8192 * 4 * 1.05,
        `${r.uploadBytesPerClient}`,
      );
    assert.ok(trained.every((r) => r.splitBytesPerSample > 32 * 128 * 4));
    const b = await simulate(c);
    assert.deepEqual(
      b.rounds.map((r) => r.accuracy),
      a.rounds.map((r) => r.accuracy),
    );
    const svg = await accuracyChart([{ label: 'fisher', rounds: a.rounds }], 'test');
    assert.match(svg, /^<svg/);
    assert.match(svg, /test accuracy/);
  });
});
