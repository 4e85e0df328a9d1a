import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type AdapterWeights, adapterShapes, createStrategy, splitTrafficBytes } from '@fednano/core';
import { writeShard } from '@fednano/data';
import { loadModelFolder } from '@fednano/model';
import type { ServiceProcess } from '@fednano/service-kit';
import {
  clientRank,
  clientSeed,
  clientsPerRound,
  planFederation,
  type RoundRecord,
  type SimulationConfig,
  type SimulationResult,
  selectClients,
} from '@fednano/simulation';
import {
  connectNats,
  ensureStorage,
  type FederationRef,
  getAdapter,
  isFinished,
  openRound,
  type RoundDocument,
  type RoundEvaluation,
  type RoundSpec,
  waitForRound,
} from '@fednano/wire';
import { LocalCluster, type LocalClusterOptions } from './cluster.js';

export interface ClientProgress {
  client: string;
  round: number;
  phase: 'training' | 'fisher' | 'published';
  step?: number;
  steps?: number;
  loss?: number;
}

export interface RunHooks {
  log?: (message: string) => void;
  onRound?: (record: RoundRecord, total: number) => void;
  onProgress?: (p: ClientProgress) => void;
  /** After a round is opened and its client-agents started: the fault tests kill and restart things here. */
  onRoundStarted?: (round: number, ctx: { cluster: LocalCluster; agents: Map<string, ServiceProcess> }) => void;
  /** Every finished round's record as the aggregator wrote it. */
  onRoundDocument?: (doc: RoundDocument) => void;
}

export interface RunOptions {
  /** Working folder for client data shards and service logs (created; removed afterwards unless keepWorkDir). */
  workDir: string;
  keepWorkDir?: boolean;
  /** A round's deadline from its opening (default 600 s). */
  roundDeadlineSeconds?: number;
  /** Fewest updates for a round to succeed at its deadline (default: spec.participation.minClients, else all). */
  minClients?: number;
  namespace?: string;
  /** Without NATS identities and mutual TLS (default: secured, as the operator runs a federation). */
  insecure?: boolean;
  cluster?: Partial<LocalClusterOptions>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class RunError extends Error {
  override name = 'RunError';
}

/**
 * `fednano run`: the same federation as `simulate` (same data plan, client selection and seeds), but every part is a
 * real process talking over real NATS and gRPC. The accuracy after each round is the aggregator's: it scores every
 * global adapter on the config's test split (written as a held-out shard), as it does under the operator.
 */
export async function runFederation(
  config: SimulationConfig,
  o: RunOptions,
  hooks: RunHooks = {},
): Promise<SimulationResult> {
  const started = performance.now();
  const log = hooks.log ?? (() => {});
  const s = config.spec;
  const sim = s.simulation;
  if (sim.method !== 'federated')
    throw new RunError(
      `fednano run runs federated training only (spec.simulation.method is '${sim.method}'); use fednano simulate for baselines`,
    );
  const f: FederationRef = { namespace: o.namespace ?? 'default', federation: config.metadata.name };
  const folder = await loadModelFolder(s.model.path);
  const cfg = folder.manifest.config;
  const shapes = adapterShapes(cfg.dModel, s.adapter.rank);
  const strategy = createStrategy({ ...s.strategy } as never);

  // Client data goes to disk, one shard per client, as it would sit on each client's volume.
  await mkdir(join(o.workDir, 'logs'), { recursive: true });
  const plan = await planFederation(config, folder.manifest.recipe.seed);
  for (const c of plan.clients) await writeShard(join(o.workDir, 'clients', c.id), plan.sets, c.questions);
  // The test split is the federation's held-out set, on the aggregator's side as a Federation's spec.evaluation.
  const heldOut = join(o.workDir, 'evaluation');
  await writeShard(heldOut, plan.sets, plan.test);
  log(`${plan.clients.length} clients, ${plan.test.length} test questions; starting nats-server, llm-host, aggregator`);

  const cluster = await LocalCluster.start({
    ...f,
    modelPath: s.model.path,
    workDir: o.workDir,
    initialAdapter: { ...s.adapter, seed: sim.seed },
    evaluationData: heldOut,
    ...(o.insecure ? {} : { security: { clients: plan.clients.map((c) => c.id) } }),
    ...o.cluster,
  });
  const control = cluster.controlCredentials;
  const nc = await connectNats({ servers: cluster.nats.url, name: 'fednano-run', credsFile: control.natsCreds });
  const agents = new Map<string, ServiceProcess>();
  try {
    const { kv, objects } = await ensureStorage(nc);
    const progress = nc.subscribe(`fednano.${f.namespace}.${f.federation}.round.*.progress.*`, {
      callback: (err, m) => {
        if (!err) hooks.onProgress?.(m.json<ClientProgress>());
      },
    });
    // Round 0, the initial adapter, is written by the aggregator (as under the operator).
    const roundZero = await waitForRound(kv, f, 0, () => true, { timeoutMs: 60_000 });
    let base = roundZero.status.result!;
    let global: AdapterWeights = await getAdapter(objects, base.object, shapes, base.sha256);
    /** The aggregator's score of the round's adapter; a round without one is a fault here (run wrote the set). */
    const scored = (doc: RoundDocument): RoundEvaluation => {
      const e = doc.status.evaluation;
      if (e && e.sha256 === doc.status.result?.sha256) return e;
      throw new RunError(
        `round ${doc.spec.round}: the aggregator recorded no accuracy (${doc.status.evaluationError ?? 'no evaluation'}); see ${join(o.workDir, 'logs', 'aggregator.log')} (--keep-work-dir keeps it)`,
      );
    };
    const rounds: RoundRecord[] = [];
    const zero = scored(roundZero);
    const initial: RoundRecord = {
      round: 0,
      method: strategy.name,
      accuracy: zero.accuracy,
      loss: zero.loss,
      trainLoss: Number.NaN,
      clients: 0,
      uploadBytesPerClient: 0,
      splitBytesPerSample: 0,
      perType: zero.perType,
      seconds: 0,
    };
    rounds.push(initial);
    hooks.onRound?.(initial, s.rounds);
    const perRound = clientsPerRound(config);
    const t = cfg.contextLength;
    const oneSample = splitTrafficBytes({
      batch: 1,
      inputsEmbeds: new Float32Array(t * cfg.dModel),
      targets: new BigInt64Array(t),
      lossWeights: new Float32Array(1),
    });

    for (let round = 1; round <= s.rounds; round++) {
      const t0 = performance.now();
      const selected = selectClients(plan.clients, sim.seed, round, perRound);
      const spec: RoundSpec = {
        ...f,
        round,
        participants: selected.map((c) => c.id),
        minClients: Math.min(selected.length, o.minClients ?? s.participation.minClients ?? selected.length),
        deadline: new Date(Date.now() + 1000 * (o.roundDeadlineSeconds ?? 600)).toISOString(),
        baseAdapter: base,
        adapter: s.adapter,
        dModel: cfg.dModel,
        strategy: { ...s.strategy } as RoundSpec['strategy'],
        training: { ...s.training, steps: s.training.localSteps, fisherSamples: s.training.fisherSamples ?? 64 },
        seeds: Object.fromEntries(selected.map((c) => [c.id, clientSeed(sim.seed, round, plan.clients.indexOf(c))])),
        updateEncoding: s.updateEncoding ?? 'float32',
        ...roundRanks(
          config,
          selected.map((c) => ({ id: c.id, index: plan.clients.indexOf(c) })),
        ),
      };
      await openRound(kv, spec);
      agents.clear();
      for (const c of selected)
        agents.set(c.id, cluster.startClientAgent(round, c.id, join(o.workDir, 'clients', c.id)));
      hooks.onRoundStarted?.(round, { cluster, agents });
      // Agents that fail are reported as they exit; the aggregator's quorum and deadline decide the round.
      let decided = false;
      for (const [id, agent] of agents)
        void agent.exited.then(({ code, signal }) => {
          if (code !== 0 && !decided)
            log(`round ${round}: client-agent ${id} exited (${signal ?? code}): ${agent.lastError() ?? 'no message'}`);
        });
      const doc = await waitForRound(kv, f, round, (d) => isFinished(d.status.state));
      decided = true;
      hooks.onRoundDocument?.(doc);
      // Agents exit on their own once published; stragglers (e.g. past the deadline) are stopped.
      await Promise.all(
        [...agents.values()].map((a) => Promise.race([a.exited, sleep(10_000)]).then(() => a.stop(2000))),
      );
      if (doc.status.state === 'Failed') throw new RunError(`round ${round} failed: ${doc.status.message}`);
      if (doc.status.message) log(`round ${round}: ${doc.status.message}`);
      base = doc.status.result!;
      global = await getAdapter(objects, base.object, shapes, base.sha256);
      const e = scored(doc);
      const record: RoundRecord = {
        round,
        method: strategy.name,
        accuracy: e.accuracy,
        loss: e.loss,
        trainLoss: doc.status.metrics?.meanTrainLoss ?? Number.NaN,
        clients: doc.status.accepted.length,
        uploadBytesPerClient: doc.status.metrics?.meanUpdateBytes ?? 0,
        splitBytesPerSample: oneSample.up + oneSample.down,
        perType: e.perType,
        seconds: (performance.now() - t0) / 1000,
      };
      rounds.push(record);
      hooks.onRound?.(record, s.rounds);
    }
    progress.unsubscribe();
    const last = rounds.at(-1)!;
    return {
      name: config.metadata.name,
      method: sim.method,
      strategy: strategy.name,
      rounds,
      final: { accuracy: last.accuracy, perType: last.perType },
      clients: plan.clients.map((c) => ({ id: c.id, examples: c.questions.length })),
      testQuestions: plan.test.length,
      adapterParams: [...global.values()].reduce((n, w) => n + w.length, 0),
      clientParams:
        folder.manifest.paramCounts.encoder +
        folder.manifest.paramCounts.connector +
        folder.manifest.paramCounts.embeddings +
        [...global.values()].reduce((n, w) => n + w.length, 0),
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await Promise.all([...agents.values()].map((a) => a.stop(2000)));
    await nc.drain().catch(() => {});
    await cluster.stop();
    if (!o.keepWorkDir) await rm(o.workDir, { recursive: true, force: true });
  }
}

/** RoundSpec.ranks: the participants whose rank (spec.simulation.adapterRanks) is not the federation's. */
function roundRanks(config: SimulationConfig, selected: { id: string; index: number }[]): Pick<RoundSpec, 'ranks'> {
  const lower = selected.filter((c) => clientRank(config, c.index) !== config.spec.adapter.rank);
  return lower.length ? { ranks: Object.fromEntries(lower.map((c) => [c.id, clientRank(config, c.index)])) } : {};
}
