import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
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
  test('every example Simulation config validates', async () => {
    const { readFile } = await import('node:fs/promises');
    const files = [];
    for (const f of (await readdir(`${ROOT}examples`)).filter((f) => f.endsWith('.yaml')))
      if (/^kind: Simulation$/m.test(await readFile(`${ROOT}examples/${f}`, 'utf8'))) files.push(f);
    assert.ok(files.length >= 3);
    for (const f of files) {
      const c = await loadConfig(`${ROOT}examples/${f}`);
      assert.equal(`${c.metadata.name}.yaml`, f);
    }
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

  test('every method and the robust strategies run a round on a tiny federation', async () => {
    const base = await quickstart();
    base.spec.model.path = `${ROOT}models/reference`;
    base.spec.rounds = 1;
    base.spec.training.localSteps = 4;
    base.spec.participation.clientsPerRound = 2;
    base.spec.simulation.clients = 2;
    base.spec.simulation.data.examplesPerClient = 24;
    base.spec.simulation.evaluation.testImagesPerDomain = 8;
    const run = async (change: (c: SimulationConfig) => void) => {
      const c = structuredClone(base);
      change(c);
      return simulate(checkConfig(c));
    };
    const lora = await run((c) => {
      c.spec.simulation.method = 'fedavg-lora';
      c.spec.strategy = { name: 'fedavg' };
    });
    const fisher = await run(() => {});
    // The LoRA baseline stores the whole model on every client and uploads more than NanoAdapters with Fisher.
    assert.ok(
      lora.clientParams > 1.5e6 && fisher.clientParams < 0.7e6,
      `${lora.clientParams} vs ${fisher.clientParams}`,
    );
    assert.ok(lora.rounds[1]!.uploadBytesPerClient > 4 * fisher.rounds[1]!.uploadBytesPerClient);
    assert.equal(lora.rounds[1]!.splitBytesPerSample, 0, 'the LoRA baseline runs the LLM itself');
    assert.equal(
      lora.rounds[0]!.accuracy,
      fisher.rounds[0]!.accuracy,
      'zero LoRA B and zero adapter B are the same frozen model',
    );
    for (const method of ['centralized', 'local-only'] as const) {
      const r = await run((c) => (c.spec.simulation.method = method));
      assert.equal(r.rounds.length, 2);
      assert.equal(r.rounds[1]!.uploadBytesPerClient, 0, `${method} sends no updates`);
    }
    for (const strategy of [
      { name: 'fedadam' },
      { name: 'median' },
      { name: 'trimmed-mean', trim: 0.2 },
      { name: 'fedavg', dp: { clipNorm: 0.5, noiseMultiplier: 0.1 } },
    ] as const) {
      const r = await run((c) => (c.spec.strategy = { ...strategy }));
      assert.ok(Number.isFinite(r.final.accuracy), JSON.stringify(strategy));
    }
  });
});
