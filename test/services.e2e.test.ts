import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { type LocalCluster, type RunHooks, runFederation } from '@fednano/local-cluster';
import { httpText } from '@fednano/service-kit';
import { loadConfig, type SimulationConfig, type SimulationResult, simulate } from '@fednano/simulation';
import { connectNats, GrpcLlmHost, type RoundDocument } from '@fednano/wire';
import { onFirst } from './support/run-hooks.js';

/**
 * End to end over real processes: nats-server (JetStream), the llm-host (gRPC, ONNX Runtime), the aggregator and one
 * client-agent process per client. Faults are injected from the run's hooks, and every faulty round's result is
 * compared with the fault-free round's adapter hash: equal hashes mean nothing was lost and nothing counted twice.
 */
const CONFIG = 'test/fixtures/e2e-small.yaml';
/** run and simulate share data, selection and seeds; batching on the llm-host may change float rounding only. */
const ACCURACY_TOLERANCE = 0.02;

async function config(rounds: number): Promise<SimulationConfig> {
  const c = await loadConfig(CONFIG);
  c.spec.rounds = rounds;
  return c;
}

interface Observed {
  result: SimulationResult;
  docs: RoundDocument[];
  log: string[];
}

async function run(
  c: SimulationConfig,
  hooks: RunHooks = {},
  extra: Parameters<typeof runFederation>[1] extends infer O ? Partial<O> : never = {},
): Promise<Observed> {
  const docs: RoundDocument[] = [];
  const log: string[] = [];
  const result = await runFederation(
    c,
    { workDir: await mkdtemp(join(tmpdir(), 'fednano-e2e-')), roundDeadlineSeconds: 120, ...extra },
    {
      ...hooks,
      log: (m) => log.push(m),
      onRoundDocument: (d) => {
        docs.push(d);
        hooks.onRoundDocument?.(d);
      },
    },
  );
  return { result, docs, log };
}

let clean: Observed;
/** What an outsider got from the clean run's services: `fednano run` is secured by default. */
let outsider: Promise<{ nats: string; llmHost: string }>;

before(async () => {
  // The fault-free reference, with a small max_payload so that updates with Fisher travel by Object Store reference.
  let metrics = '';
  let cluster: LocalCluster | undefined;
  clean = await run(
    await config(1),
    {
      onRoundStarted: (_r, c) => {
        cluster = c.cluster;
        const refusal = (p: Promise<unknown>) =>
          p.then(
            () => 'accepted',
            (e: Error) => e.message,
          );
        outsider ??= (async () => ({
          nats: await refusal(connectNats({ servers: c.cluster.nats.url, name: 'outsider' })),
          llmHost: await refusal(
            new GrpcLlmHost(c.cluster.llmHostAddress, { retry: { budgetMs: 0 }, deadlineMs: 5000 }).info(),
          ),
        }))();
      },
      onRoundDocument: () => {
        void httpText(`http://127.0.0.1:${cluster!.opsPorts.aggregator}/metrics`).then((t) => {
          metrics = t;
        });
      },
    },
    { cluster: { nats: { maxPayload: 24 * 1024 } } },
  );
  await new Promise((r) => setTimeout(r, 100));
  assert.match(
    metrics,
    /fednano_aggregator_updates_by_reference_total 3/,
    'updates larger than max_payload go by reference',
  );
  // The aggregator scored the initial adapter (round 0) and round 1's on the held-out set run wrote.
  assert.match(metrics, /fednano_aggregator_evaluations_total\{outcome="ok"\} 2/);
  assert.match(metrics, /fednano_aggregator_global_adapter_accuracy_ratio 0\.\d+/);
});

test('one round over real NATS and gRPC: three updates accepted, accuracy equals simulate', async () => {
  // Secured as in a cluster: no NATS user, no client certificate, no access.
  const refused = await outsider;
  assert.match(refused.nats, /Authorization Violation/i);
  assert.match(refused.llmHost, /Info failed/);
  const doc = clean.docs[0]!;
  assert.equal(doc.status.state, 'Aggregated');
  assert.equal(doc.status.accepted.length, 3);
  assert.equal(new Set(doc.status.accepted.map((a) => a.client)).size, 3);
  assert.equal(doc.status.duplicates, 0);
  // What run prints is the aggregator's evaluation of the round's adapter, recorded with the round.
  assert.equal(doc.status.evaluation?.sha256, doc.status.result?.sha256);
  assert.equal(clean.result.rounds[1]!.accuracy, doc.status.evaluation?.accuracy);
  assert.deepEqual(clean.result.rounds[1]!.perType, doc.status.evaluation?.perType);
  const sim = await simulate(await config(1));
  // The same initial adapter scored by the same evaluation on the same questions: equal, not just close.
  assert.equal(clean.result.rounds[0]!.accuracy, sim.rounds[0]!.accuracy);
  assert.equal(clean.result.testQuestions, sim.testQuestions);
  assert.ok(Math.abs(clean.result.final.accuracy - sim.final.accuracy) <= ACCURACY_TOLERANCE);
  assert.ok(Math.abs(clean.result.rounds[1]!.trainLoss - sim.rounds[1]!.trainLoss) < 1e-3);
});

test('three rounds: accuracy after every round matches simulate with the same seed', async () => {
  const [ran, sim] = [await run(await config(3)), await simulate(await config(3))];
  assert.equal(ran.result.rounds.length, 4);
  for (const [i, r] of ran.result.rounds.entries()) {
    const s = sim.rounds[i]!;
    assert.ok(
      Math.abs(r.accuracy - s.accuracy) <= ACCURACY_TOLERANCE,
      `round ${i}: run ${r.accuracy} vs simulate ${s.accuracy}`,
    );
  }
  assert.equal(ran.docs[0]!.status.result!.sha256, clean.docs[0]!.status.result!.sha256);
  assert.ok(ran.result.final.accuracy > ran.result.rounds[0]!.accuracy, 'training improves on zero-shot');
});

test('kill -9 of the aggregator mid-round, then a restart: the round completes with the same result', async () => {
  const restarted: Promise<void>[] = [];
  const o = await run(
    await config(1),
    onFirst(
      (p) => p.phase === 'published',
      ({ cluster }) => {
        cluster.aggregator.signal('SIGKILL');
        restarted.push(cluster.aggregator.exited.then(() => cluster.startAggregator()));
      },
    ),
  );
  await Promise.all(restarted);
  assert.equal(restarted.length, 1, 'the fault was injected');
  const doc = o.docs[0]!;
  assert.equal(doc.status.state, 'Aggregated');
  assert.deepEqual(
    doc.status.accepted.map((a) => a.client).sort(),
    clean.docs[0]!.status.accepted.map((a) => a.client).sort(),
  );
  assert.equal(doc.status.result!.sha256, clean.docs[0]!.status.result!.sha256);
});

test('aggregator killed mid-aggregation (adapter stored, round not yet recorded): the restart decides it identically', async () => {
  let died: NodeJS.Signals | null = null;
  let restarts = 0;
  let restarted: Promise<unknown> | undefined;
  const o = await run(
    await config(1),
    {
      onRoundStarted: (_r, { cluster }) => {
        void cluster.aggregator.exited.then(({ signal }) => {
          died = signal;
          restarts++;
          restarted = cluster.startAggregator().catch((e: Error) => e); // without the crash point
        });
      },
    },
    { cluster: { aggregatorEnv: { FEDNANO_CRASH_AT: 'aggregator:adapter-written' } } },
  );
  assert.equal(died, 'SIGKILL', 'the aggregator died at the crash point');
  assert.equal(restarts, 1);
  // The new instance decides (and scores) the round while it starts, so run may be done and have stopped it (SIGTERM,
  // a clean exit 0) before its readiness was seen; any other end of the restart is a failure.
  const restart = await restarted;
  if (restart instanceof Error) assert.match(restart.message, /exited \(0\) before it was ready/);
  const doc = o.docs[0]!;
  assert.equal(doc.status.state, 'Aggregated');
  assert.equal(doc.status.accepted.length, 3);
  assert.equal(doc.status.duplicates, 0);
  assert.equal(doc.status.result!.sha256, clean.docs[0]!.status.result!.sha256);
});

test('kill -9 of the llm-host during training, then a restart: client-agents retry and finish', async () => {
  const restarted: Promise<void>[] = [];
  const o = await run(
    await config(1),
    onFirst(
      (p) => p.phase === 'training' && (p.step ?? 0) >= 3,
      ({ cluster }) => {
        cluster.llmHost.signal('SIGKILL');
        restarted.push(
          cluster.llmHost.exited.then(() => new Promise((r) => setTimeout(r, 500))).then(() => cluster.startLlmHost()),
        );
      },
    ),
  );
  await Promise.all(restarted);
  assert.equal(restarted.length, 1, 'the fault was injected');
  assert.equal(o.docs[0]!.status.state, 'Aggregated');
  assert.equal(o.docs[0]!.status.accepted.length, 3);
  assert.equal(o.docs[0]!.status.result!.sha256, clean.docs[0]!.status.result!.sha256);
});

test('a client-agent that dies: at the deadline the quorum (2 of 3) decides, and the missing client is named', async () => {
  let victim = '';
  const o = await run(
    await config(1),
    onFirst(
      (p) => p.phase === 'training' && (p.step ?? 0) >= 2,
      ({ agents, p }) => {
        victim = p.client;
        agents.get(p.client)!.signal('SIGKILL');
      },
    ),
    { roundDeadlineSeconds: 20, minClients: 2 },
  );
  assert.ok(victim);
  const doc = o.docs[0]!;
  assert.equal(doc.status.state, 'Aggregated');
  assert.equal(doc.status.accepted.length, 2);
  assert.ok(!doc.status.accepted.some((a) => a.client === victim));
  assert.match(doc.status.message ?? '', new RegExp(`without updates from ${victim}`));
  assert.ok(
    o.log.some((l) => l.includes(`client-agent ${victim} exited (SIGKILL)`)),
    'the death is reported',
  );
});
