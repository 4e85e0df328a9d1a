import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type AdapterConfig,
  type AdapterWeights,
  adapterSha256,
  adapterShapes,
  type EvaluationResult,
  encodeUpdate,
  initAdapters,
} from '@fednano/core';
import { createLogger, NatsServer } from '@fednano/service-kit';
import {
  adapterObject,
  connectNats,
  dedupeId,
  ensureStorage,
  type FederationStorage,
  getAdapter,
  isFinished,
  openRound,
  putAdapter,
  type RoundSpec,
  updateSubject,
  waitForRound,
} from '@fednano/wire';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { Aggregator } from './aggregator.js';
import { HeldOutEvaluator, type RoundEvaluator } from './evaluation.js';
import { aggregatorMetrics } from './metrics.js';

// The aggregator in this process against a real nats-server: validation, exactly-once, quorum, deadline, restart.
const D = 16;
const RANK = 2;
const shapes = adapterShapes(D, RANK);
let server: NatsServer;
let nc: NatsConnection;
let storage: FederationStorage;
const log = createLogger('aggregator-test');
log.level = 'silent';

before(async () => {
  server = await NatsServer.start();
  nc = await connectNats({ servers: server.url, name: 'test' });
  storage = await ensureStorage(nc);
});
after(async () => {
  await nc?.close();
  await server?.stop();
});

async function startAggregator(federation: string, evaluator?: RoundEvaluator) {
  const conn = await connectNats({ servers: server.url, name: `agg-${federation}` });
  const metrics = aggregatorMetrics();
  const a = new Aggregator(conn, {
    namespace: 'test',
    federation,
    ackWaitMs: 1000,
    maxUpdateBytes: 1 << 20,
    metrics,
    log,
    evaluator,
  });
  await a.start();
  return {
    a,
    metrics,
    async stop() {
      await a.stop();
      await conn.close();
    },
  };
}

const shifted = (w: AdapterWeights, by: number): AdapterWeights =>
  new Map([...w].map(([k, v]) => [k, v.map((x) => x + by)]));

async function openTestRound(
  federation: string,
  round: number,
  participants: string[],
  extra: Partial<RoundSpec> = {},
) {
  const f = { namespace: 'test', federation };
  const base = initAdapters(D, { rank: RANK, alpha: 4 }, 1);
  const sha256 = await putAdapter(storage.objects, adapterObject(f, round - 1), base, shapes);
  const spec: RoundSpec = {
    ...f,
    round,
    participants,
    minClients: participants.length,
    deadline: new Date(Date.now() + 60_000).toISOString(),
    baseAdapter: { object: adapterObject(f, round - 1), sha256 },
    adapter: { rank: RANK, alpha: 4 },
    dModel: D,
    strategy: { name: 'fedavg' },
    training: { steps: 1, batchSize: 1, learningRate: 0.1, optimizer: 'sgd', fisherSamples: 1 },
    seeds: {},
    updateEncoding: 'float32',
    ...extra,
  };
  await openRound(storage.kv, spec);
  return { f, base, sha256, spec };
}

function update(
  f: { namespace: string; federation: string },
  round: number,
  client: string,
  base: string,
  w: AdapterWeights,
  samples = 10,
) {
  return encodeUpdate(
    { ...f, round, clientId: client, baseAdapterSha256: base, sampleCount: samples, weights: w },
    { shapes, dtype: 'float32' },
  );
}

function assertShiftedBy(result: AdapterWeights, base: AdapterWeights, by: number) {
  for (const [k, v] of result)
    for (let i = 0; i < v.length; i++) assert.ok(Math.abs(v[i]! - base.get(k)![i]! - by) < 1e-5, `${k}[${i}]`);
}

async function publish(
  f: { namespace: string; federation: string },
  round: number,
  client: string,
  bytes: Uint8Array,
  msgID?: string,
) {
  return jetstream(nc).publish(updateSubject(f, round, client), bytes, { msgID: msgID ?? dedupeId(f, round, client) });
}

test('aggregates participants once each, and records every refusal with its reason', async () => {
  const agg = await startAggregator('validate');
  try {
    const { f, base, sha256 } = await openTestRound('validate', 1, ['a', 'b', 'c', 'd'], { minClients: 2 });
    await publish(f, 1, 'a', update(f, 1, 'a', sha256, shifted(base, 1), 10));
    await publish(f, 1, 'intruder', update(f, 1, 'intruder', sha256, shifted(base, 100)));
    await publish(f, 1, 'b', update(f, 1, 'b', sha256, shifted(base, 3), 30));
    // The same client again under another message id (a retrained pod): dropped as a duplicate, not aggregated.
    await publish(f, 1, 'a', update(f, 1, 'a', sha256, shifted(base, 50)), 'other-id');
    await publish(f, 1, 'c', new Uint8Array([1, 2, 3])); // garbage
    await publish(f, 1, 'd', update(f, 1, 'd', 'f'.repeat(64), shifted(base, 7))); // trained from another adapter
    const doc = await waitForRound(storage.kv, f, 1, (d) => isFinished(d.status.state), { timeoutMs: 10_000 });
    assert.equal(doc.status.state, 'Aggregated');
    assert.deepEqual(
      doc.status.accepted.map((u) => u.client),
      ['a', 'b'],
    );
    assert.deepEqual(doc.status.rejected.map((r) => [r.client, r.reason]).sort(), [
      ['c', 'malformed'],
      ['d', 'base'],
      ['intruder', 'not-participant'],
    ]);
    assert.equal(doc.status.duplicates, 1);
    const metrics = await agg.metrics.registry.getMetricsAsJSON();
    const rejected = metrics.find((m) => m.name === 'fednano_aggregator_updates_rejected_total')!;
    const byReason = Object.fromEntries(rejected.values.map((v) => [v.labels.reason, v.value]));
    assert.deepEqual(byReason, { 'not-participant': 1, malformed: 1, base: 1 });
    // FedAvg by samples: (10 * 1 + 30 * 3) / 40 = 2.5 added to every weight.
    const result = await getAdapter(storage.objects, doc.status.result!.object, shapes, doc.status.result!.sha256);
    assertShiftedBy(result, base, 2.5);
    // An update for a decided round is refused as stale.
    await publish(f, 1, 'b', update(f, 1, 'b', sha256, base), 'late');
    await new Promise((r) => setTimeout(r, 300));
    const stale = (await agg.metrics.registry.getMetricsAsJSON()).find(
      (m) => m.name === 'fednano_aggregator_updates_rejected_total',
    )!;
    assert.equal(stale.values.find((v) => v.labels.reason === 'stale-round')?.value, 1);
  } finally {
    await agg.stop();
  }
});

test('a new aggregator instance resumes a round from its record: nothing lost, nothing counted twice', async () => {
  const first = await startAggregator('restart');
  const { f, base, sha256 } = await openTestRound('restart', 1, ['a', 'b', 'c']);
  await publish(f, 1, 'a', update(f, 1, 'a', sha256, shifted(base, 1)));
  await publish(f, 1, 'b', update(f, 1, 'b', sha256, shifted(base, 2)));
  await waitForRound(storage.kv, f, 1, (d) => d.status.accepted.length === 2, { timeoutMs: 10_000 });
  await first.stop(); // its in-memory sums are gone
  const second = await startAggregator('restart');
  try {
    await publish(f, 1, 'b', update(f, 1, 'b', sha256, shifted(base, 2)), 'b-again'); // a restarted client
    await publish(f, 1, 'c', update(f, 1, 'c', sha256, shifted(base, 6)));
    const doc = await waitForRound(storage.kv, f, 1, (d) => isFinished(d.status.state), { timeoutMs: 10_000 });
    assert.equal(doc.status.state, 'Aggregated');
    assert.deepEqual(
      doc.status.accepted.map((u) => u.client),
      ['a', 'b', 'c'],
    );
    assert.equal(doc.status.duplicates, 1);
    const result = await getAdapter(storage.objects, doc.status.result!.object, shapes, doc.status.result!.sha256);
    assertShiftedBy(result, base, 3); // (1 + 2 + 6) / 3
  } finally {
    await second.stop();
  }
});

test('at the deadline, quorum decides: aggregated with the missing named, or failed', async () => {
  const agg = await startAggregator('deadline');
  try {
    const soon = () => new Date(Date.now() + 1500).toISOString();
    const r1 = await openTestRound('deadline', 1, ['a', 'b', 'c'], { minClients: 2, deadline: soon() });
    await publish(r1.f, 1, 'a', update(r1.f, 1, 'a', r1.sha256, shifted(r1.base, 1)));
    await publish(r1.f, 1, 'b', update(r1.f, 1, 'b', r1.sha256, shifted(r1.base, 1)));
    const ok = await waitForRound(storage.kv, r1.f, 1, (d) => isFinished(d.status.state), { timeoutMs: 10_000 });
    assert.equal(ok.status.state, 'Aggregated');
    assert.match(ok.status.message ?? '', /without updates from c/);

    const r2 = await openTestRound('deadline', 2, ['a', 'b', 'c'], { minClients: 2, deadline: soon() });
    await publish(r2.f, 2, 'a', update(r2.f, 2, 'a', r2.sha256, shifted(r2.base, 1)));
    const failed = await waitForRound(storage.kv, r2.f, 2, (d) => isFinished(d.status.state), { timeoutMs: 10_000 });
    assert.equal(failed.status.state, 'Failed');
    assert.match(
      failed.status.message ?? '',
      /quorum not met: 1 accepted updates, minClients is 2; no update from b, c/,
    );
  } finally {
    await agg.stop();
  }
});

test('replayed, re-addressed and misbound updates are refused and counted by reason', async () => {
  const agg = await startAggregator('replay');
  try {
    const r1 = await openTestRound('replay', 1, ['a', 'b']);
    const fromRound1 = update(r1.f, 1, 'a', r1.sha256, shifted(r1.base, 1));
    await publish(r1.f, 1, 'a', fromRound1);
    await publish(r1.f, 1, 'b', update(r1.f, 1, 'b', r1.sha256, shifted(r1.base, 1)));
    await waitForRound(storage.kv, r1.f, 1, (d) => isFinished(d.status.state), { timeoutMs: 10_000 });
    const { f, base, sha256 } = await openTestRound('replay', 2, ['a', 'b', 'c', 'd'], { minClients: 1 });
    // a replays its round-1 update into round 2 (a new message id, so the stream's dedupe does not catch it).
    await publish(f, 2, 'a', fromRound1, 'replayed');
    // b sends an update encoded as client c's: the subject (b's own) and the signed-in identity disagree.
    await publish(f, 2, 'b', update(f, 2, 'c', sha256, shifted(base, 2)));
    // c sends one bound to another federation.
    await publish(f, 2, 'c', update({ namespace: 'test', federation: 'other' }, 2, 'c', sha256, shifted(base, 2)));
    // A refused update is the client's answer for the round: a second try from a is a duplicate, not a new chance.
    await publish(f, 2, 'a', update(f, 2, 'a', sha256, shifted(base, 4)), 'second-try');
    await publish(f, 2, 'd', update(f, 2, 'd', sha256, shifted(base, 4)));
    const doc = await waitForRound(
      storage.kv,
      f,
      2,
      (d) => d.status.accepted.length === 1 && d.status.rejected.length === 3,
      {
        timeoutMs: 10_000,
      },
    );
    assert.deepEqual(doc.status.rejected.map((r) => [r.client, r.reason]).sort(), [
      ['a', 'round'],
      ['b', 'client'],
      ['c', 'federation'],
    ]);
    assert.deepEqual(
      doc.status.accepted.map((u) => u.client),
      ['d'],
    );
    assert.equal(doc.status.duplicates, 1);
    const rejected = (await agg.metrics.registry.getMetricsAsJSON()).find(
      (m) => m.name === 'fednano_aggregator_updates_rejected_total',
    )!;
    const byReason = Object.fromEntries(rejected.values.map((v) => [v.labels.reason, v.value]));
    assert.deepEqual(byReason, { round: 1, client: 1, federation: 1 });
  } finally {
    await agg.stop();
  }
});

// ---- evaluation of each new global adapter ----------------------------------------------------------------------

const MODEL = fileURLToPath(new URL('../../../models/reference', import.meta.url));

/** Scores by the adapter itself (mean of image.B / 10), and remembers what it was given. */
class RecordingEvaluator implements RoundEvaluator {
  readonly seen: { adapter: AdapterConfig; sha256: string }[] = [];
  async evaluate(adapter: AdapterConfig, weights: AdapterWeights): Promise<EvaluationResult> {
    const shape = adapterShapes(weights.get('image.A')!.length / adapter.rank, adapter.rank);
    this.seen.push({ adapter, sha256: adapterSha256(weights, shape) });
    const b = weights.get('image.B')!;
    const accuracy = b.reduce((x, y) => x + y, 0) / b.length / 10;
    return {
      examples: 8,
      accuracy,
      loss: 1 - accuracy,
      perType: { 'digit-parity': { examples: 4, correct: 1 }, 'fashion-category': { examples: 4, correct: 3 } },
    };
  }
  async close() {}
}

const metricValue = async (agg: { metrics: ReturnType<typeof aggregatorMetrics> }, name: string) =>
  (await agg.metrics.registry.getMetricsAsJSON()).find((m) => m.name === name)?.values ?? [];

test('each aggregated adapter is scored before the round is recorded: accuracy, per type, in the record and metrics', async () => {
  const evaluator = new RecordingEvaluator();
  const agg = await startAggregator('evaluated', evaluator);
  try {
    const { f, base, sha256 } = await openTestRound('evaluated', 1, ['a', 'b']);
    await publish(f, 1, 'a', update(f, 1, 'a', sha256, shifted(base, 1), 10));
    await publish(f, 1, 'b', update(f, 1, 'b', sha256, shifted(base, 3), 30));
    const doc = await waitForRound(storage.kv, f, 1, (d) => isFinished(d.status.state), { timeoutMs: 10_000 });
    assert.equal(doc.status.state, 'Aggregated');
    // The evaluator saw exactly the stored result (B moved by 2.5 from zero: accuracy 0.25 by its rule).
    assert.deepEqual(evaluator.seen, [{ adapter: { rank: RANK, alpha: 4 }, sha256: doc.status.result!.sha256 }]);
    const e = doc.status.evaluation!;
    assert.ok(Math.abs(e.accuracy - 0.25) < 1e-6, `accuracy ${e.accuracy}`);
    assert.deepEqual(
      { ...e, accuracy: 0, loss: 0 },
      {
        examples: 8,
        accuracy: 0,
        loss: 0,
        perType: { 'digit-parity': 0.25, 'fashion-category': 0.75 },
        sha256: doc.status.result!.sha256,
      },
    );
    assert.equal(doc.status.evaluationError, undefined);
    const [gauge] = await metricValue(agg, 'fednano_aggregator_global_adapter_accuracy_ratio');
    assert.equal(gauge?.value, e.accuracy);
    const outcomes = await metricValue(agg, 'fednano_aggregator_evaluations_total');
    assert.deepEqual(
      outcomes.map((v) => [v.labels.outcome, v.value]),
      [['ok', 1]],
    );
  } finally {
    await agg.stop();
  }
});

test('a missing or corrupt held-out set: the round is still aggregated, without accuracy, and says why', async () => {
  const corrupt = await mkdtemp(join(tmpdir(), 'fednano-held-out-'));
  await writeFile(join(corrupt, 'shard.json'), '{"format":"something-else"}');
  try {
    for (const [name, dir, why] of [
      ['no-held-out', join(corrupt, 'missing'), /cannot read .*missing\/shard\.json.*--evaluation-data/],
      ['bad-held-out', corrupt, /format 'something-else', expected 'fednano-shard\/v1'/],
    ] as const) {
      const agg = await startAggregator(name, new HeldOutEvaluator(MODEL, dir));
      try {
        const { f, base, sha256 } = await openTestRound(name, 1, ['a']);
        await publish(f, 1, 'a', update(f, 1, 'a', sha256, shifted(base, 1)));
        const doc = await waitForRound(storage.kv, f, 1, (d) => isFinished(d.status.state), { timeoutMs: 10_000 });
        assert.equal(doc.status.state, 'Aggregated');
        assert.equal(doc.status.evaluation, undefined);
        assert.match(doc.status.evaluationError ?? '', why);
        // Nothing lost: the adapter is stored and verifies.
        const result = await getAdapter(storage.objects, doc.status.result!.object, shapes, doc.status.result!.sha256);
        assertShiftedBy(result, base, 1);
        const outcomes = await metricValue(agg, 'fednano_aggregator_evaluations_total');
        assert.deepEqual(
          outcomes.map((v) => [v.labels.outcome, v.value]),
          [['failed', 1]],
        );
      } finally {
        await agg.stop();
      }
    }
  } finally {
    await rm(corrupt, { recursive: true, force: true });
  }
});

test("round 0 carries the initial adapter's accuracy", async () => {
  const evaluator = new RecordingEvaluator();
  const agg = await startAggregator('initial-evaluated', evaluator);
  try {
    await agg.a.ensureInitialAdapter(MODEL, { rank: RANK, alpha: 4, seed: 3 });
    const zero = await waitForRound(storage.kv, { namespace: 'test', federation: 'initial-evaluated' }, 0, () => true);
    assert.equal(zero.status.evaluation?.sha256, zero.status.result!.sha256);
    assert.equal(zero.status.evaluation?.accuracy, 0, 'B starts at zero');
    assert.equal(evaluator.seen.length, 1);
  } finally {
    await agg.stop();
  }
});
