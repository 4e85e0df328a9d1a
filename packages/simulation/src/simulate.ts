import {
  type AdapterConfig,
  type AdapterWeights,
  adapterSha256,
  adapterShapes,
  createRankAwareStrategy,
  createStrategy,
  type Dims,
  decodeUpdate,
  type EvaluationResult,
  type Example,
  encodeUpdate,
  evaluateAdapters,
  fisherDiagonal,
  InProcessLlmHost,
  initAdapters,
  type LlmHost,
  type LocalTrainingConfig,
  projectAdapter,
  type RankSettings,
  type SplitOptions,
  type StrategySpec,
  trainLocal,
} from '@fednano/core';
import { imageTokenCount, type LoadedModelFolder, labelPrivateParts, loadModelFolder, openModel } from '@fednano/model';
import { attackFisher, attackWeights, chooseAdversaries } from './adversary.js';
import { clientRank, clientsPerRound, type SimulationConfig } from './config.js';
import { LoraClientModel } from './lora-baseline.js';
import { clientSeed, planFederation, prepareExamples, selectClients } from './plan.js';
import { NanoEdgeCache } from './prepare.js';

export interface RoundRecord {
  round: number;
  method: string;
  /** Closed-set accuracy of the global adapter (local-only: the mean over clients) on the test questions. */
  accuracy: number;
  /** Mean NLL of the correct answers on the test questions. */
  loss: number;
  /** Mean local training loss of this round's clients. */
  trainLoss: number;
  clients: number;
  /** Encoded adapter update, bytes per participating client (0 where nothing is sent). */
  uploadBytesPerClient: number;
  /** Split-training traffic (activations up + gradients down) per training sample. */
  splitBytesPerSample: number;
  perType: Record<string, number>;
  seconds: number;
}

export interface SimulationResult {
  name: string;
  method: string;
  strategy: string;
  rounds: RoundRecord[];
  final: { accuracy: number; perType: Record<string, number> };
  /** rank: the client's adapter rank, where clients have different ranks (spec.simulation.adapterRanks). */
  clients: { id: string; examples: number; rank?: number }[];
  /** Ids of the Byzantine clients (spec.simulation.adversaries), when the config has any. */
  adversaries?: string[];
  testQuestions: number;
  adapterParams: number;
  /** Parameters each client stores. */
  clientParams: number;
  seconds: number;
}

export interface SimulationHooks {
  log?: (message: string) => void;
  onRound?: (record: RoundRecord, total: number) => void;
  /**
   * ONNX Runtime intra-op threads of each session (default 2). Measured not to change results: 1 and 2 threads give
   * the same run bit for bit (README, Quick start), so this trades speed only.
   */
  threads?: number;
}

interface Client {
  id: string;
  examples: Example[];
}

/** What the rounds loop needs from a way of adapting the model: FedNano's NanoAdapters or the LoRA baseline. */
interface Trainer {
  shapes: Record<string, readonly number[]>;
  initial: AdapterWeights;
  /** Parameters a client stores: NanoEdge plus adapters, or the whole model plus LoRA. */
  clientParams: number;
  /** rank: the client's adapter rank where it is not the federation's (NanoAdapters only). */
  train(
    start: AdapterWeights,
    examples: Example[],
    cfg: LocalTrainingConfig & SplitOptions,
    rank?: number,
  ): Promise<{
    weights: AdapterWeights;
    meanLoss: number;
    samples: number;
    steps: number;
    upBytes: number;
    downBytes: number;
  }>;
  fisher(
    weights: AdapterWeights,
    examples: Example[],
    maxSamples: number,
    split?: SplitOptions & { seed?: number },
    rank?: number,
  ): Promise<AdapterWeights>;
  evaluate(weights: AdapterWeights, examples: Example[]): Promise<EvaluationResult>;
  close(): Promise<void>;
}

function nanoAdapterTrainer(
  host: LlmHost,
  dims: Dims,
  adapter: AdapterConfig,
  seed: number,
  edgeParams: number,
): Trainer {
  const initial = initAdapters(dims.dModel, adapter, seed);
  return {
    shapes: adapterShapes(dims.dModel, adapter.rank),
    initial,
    clientParams: edgeParams + [...initial.values()].reduce((n, t) => n + t.length, 0),
    train: (start, examples, cfg, rank) =>
      trainLocal(host, dims, { ...adapter, rank: rank ?? adapter.rank }, start, examples, cfg),
    fisher: (w, examples, maxSamples, split, rank) =>
      fisherDiagonal(host, dims, { ...adapter, rank: rank ?? adapter.rank }, w, examples, { maxSamples, ...split }),
    evaluate: (w, examples) => evaluateAdapters(host, dims, adapter, w, examples),
    close: () => host.close(),
  };
}

async function loraTrainer(folder: LoadedModelFolder, adapter: AdapterConfig, seed: number): Promise<Trainer> {
  const m = await LoraClientModel.create(folder, adapter, seed);
  return {
    shapes: m.shapes,
    initial: m.initial,
    clientParams: m.modelParams + [...m.initial.values()].reduce((n, t) => n + t.length, 0),
    train: async (start, examples, cfg) => ({
      ...(await m.trainLocal(start, examples, cfg)),
      steps: cfg.steps,
      upBytes: 0,
      downBytes: 0,
    }),
    fisher: () => Promise.reject(new Error('the LoRA baseline has no Fisher merging')),
    evaluate: (w, examples) => m.evaluate(w, examples),
    close: () => m.close(),
  };
}

/** Runs a whole simulation in this process: data, NanoEdge, llm-host, clients, strategy, evaluation. */
export async function simulate(config: SimulationConfig, hooks: SimulationHooks = {}): Promise<SimulationResult> {
  const started = performance.now();
  const log = hooks.log ?? (() => {});
  const s = config.spec;
  const sim = s.simulation;
  const folder = await loadModelFolder(s.model.path);
  const cfg = folder.manifest.config;
  const dims: Dims = { imageTokens: imageTokenCount(cfg), contextLength: cfg.contextLength, dModel: cfg.dModel };
  const model = await openModel(folder, hooks.threads);
  const pc = folder.manifest.paramCounts;
  const trainer: Trainer =
    sim.method === 'fedavg-lora'
      ? await loraTrainer(folder, s.adapter, sim.seed)
      : nanoAdapterTrainer(
          await InProcessLlmHost.create(
            {
              modelId: folder.manifest.parts.llm.sha256.slice(0, 12),
              dModel: cfg.dModel,
              contextLength: cfg.contextLength,
              vocabSize: cfg.vocabSize,
            },
            {
              llm: folder.files.llm,
              llmVjp: folder.files.llm_vjp,
              ...(sim.split?.labelPrivate ? labelPrivateParts(cfg, folder.files.llm) : {}),
            },
            hooks.threads,
          ),
          dims,
          s.adapter,
          sim.seed,
          pc.encoder + pc.connector + pc.embeddings,
        );
  const shapes = trainer.shapes;
  try {
    const plan = await planFederation(config, folder.manifest.recipe.seed);
    const edge = new NanoEdgeCache(model);
    const clients: Client[] = [];
    for (const c of plan.clients)
      clients.push({ id: c.id, examples: await prepareExamples(edge, plan.sets, c.questions) });
    const testExamples = await prepareExamples(edge, plan.sets, plan.test);
    log(
      `${clients.length} clients (${clients.map((c) => c.examples.length).join(', ')} questions), ${testExamples.length} test questions`,
    );

    const adv = sim.method === 'federated' ? sim.adversaries : undefined;
    const byzantine = new Set(adv ? chooseAdversaries(clients.length, adv.clients, sim.seed) : []);
    if (byzantine.size)
      log(`Byzantine clients (${adv!.attack}): ${[...byzantine].map((i) => clients[i]!.id).join(', ')}`);

    const strategySpec = { ...s.strategy } as StrategySpec;
    // Heterogeneous clients: client i trains rank adapterRanks[i mod n]; mixed ranks need the rank-aware merge.
    const rankOf = (index: number) => clientRank(config, index);
    const mixedRanks = clients.some((_, i) => rankOf(i) !== s.adapter.rank);
    const ranks: RankSettings = {
      dModel: dims.dModel,
      adapter: { rank: s.adapter.rank, alpha: s.adapter.alpha },
      merge: s.adapter.rankMerge ?? 'svd',
    };
    const strategy = mixedRanks ? createRankAwareStrategy(strategySpec, ranks) : createStrategy(strategySpec);
    if (mixedRanks) log(`adapter ranks ${clients.map((_, i) => rankOf(i)).join(', ')}, merged by ${ranks.merge}`);
    const perRound = clientsPerRound(config);
    const training = (seed: number, proximalMu?: number) => ({
      ...s.training,
      steps: s.training.localSteps,
      seed,
      proximalMu,
      ...sim.split,
    });
    let global: AdapterWeights = trainer.initial;
    const adapterParams = [...global.values()].reduce((n, t) => n + t.length, 0);
    const localWeights = new Map(clients.map((c) => [c.id, global]));
    const rounds: RoundRecord[] = [];
    // Round 0: the frozen model with fresh (identity) adapters, i.e. zero-shot.
    const zeroShot = await trainer.evaluate(global, testExamples);
    const initial: RoundRecord = {
      round: 0,
      method: sim.method === 'federated' ? strategy.name : sim.method,
      accuracy: zeroShot.accuracy,
      loss: zeroShot.loss,
      trainLoss: Number.NaN,
      clients: 0,
      uploadBytesPerClient: 0,
      splitBytesPerSample: 0,
      perType: perTypeAccuracy(zeroShot),
      seconds: 0,
    };
    rounds.push(initial);
    hooks.onRound?.(initial, s.rounds);

    for (let round = 1; round <= s.rounds; round++) {
      const t0 = performance.now();
      const selected = selectClients(clients, sim.seed, round, perRound);
      let upload = 0;
      let split = 0;
      let samples = 0;
      const trainLosses: number[] = [];
      let evaluation: EvaluationResult;
      if (sim.method === 'centralized') {
        // One trainer on everyone's data, with the compute of a whole round: localSteps for each selected client.
        const all = clients.flatMap((c) => c.examples);
        const r = await trainer.train(global, all, {
          ...training(sim.seed * 31 + round),
          steps: s.training.localSteps * perRound,
        });
        global = r.weights;
        trainLosses.push(r.meanLoss);
        split += r.upBytes + r.downBytes;
        samples += r.samples;
        evaluation = await trainer.evaluate(global, testExamples);
      } else if (sim.method === 'local-only') {
        for (const c of selected) {
          const r = await trainer.train(
            localWeights.get(c.id)!,
            c.examples,
            training(clientSeed(sim.seed, round, clients.indexOf(c))),
          );
          localWeights.set(c.id, r.weights);
          trainLosses.push(r.meanLoss);
          split += r.upBytes + r.downBytes;
          samples += r.samples;
        }
        const evals = [];
        for (const c of clients) evals.push(await trainer.evaluate(localWeights.get(c.id)!, testExamples));
        evaluation = averageEvaluations(evals);
      } else {
        const base = adapterSha256(global, shapes);
        const aggregator = strategy.begin(global, round);
        const { proximalMu } = strategy.clientConfig();
        for (const c of selected) {
          const index = clients.indexOf(c);
          const seed = clientSeed(sim.seed, round, index);
          const rank = rankOf(index);
          // A lower-rank client starts from the global adapter's projection to its rank.
          const start = mixedRanks ? projectAdapter(global, rank, ranks) : global;
          const r = await trainer.train(start, c.examples, training(seed, proximalMu), rank);
          let fisher = strategy.needsFisher
            ? await trainer.fisher(r.weights, c.examples, s.training.fisherSamples ?? 64, { ...sim.split, seed }, rank)
            : undefined;
          let weights = r.weights;
          // A Byzantine client trains honestly, then replaces what it sends (before the codec, as a real one would).
          if (adv && byzantine.has(index)) {
            weights = attackWeights(start, r.weights, adv, seed * 2 + 1);
            if (fisher) fisher = attackFisher(fisher, adv.fisherScale);
          }
          // Every update goes through the wire format, as it would over NATS.
          const bytes = encodeUpdate(
            {
              namespace: 'simulation',
              federation: config.metadata.name,
              round,
              clientId: c.id,
              baseAdapterSha256: base,
              sampleCount: c.examples.length,
              weights,
              fisher,
              metrics: {
                loss: r.meanLoss,
                steps: r.steps,
                seconds: 0,
                splitUpBytes: r.upBytes,
                splitDownBytes: r.downBytes,
              },
              ...(mixedRanks ? { rank } : {}),
            },
            { shapes: mixedRanks ? adapterShapes(dims.dModel, rank) : shapes, dtype: s.updateEncoding ?? 'float32' },
          );
          const u = decodeUpdate(bytes, {
            namespace: 'simulation',
            federation: config.metadata.name,
            round,
            baseAdapterSha256: base,
            shapes,
            clientId: c.id,
            requireFisher: strategy.needsFisher,
            ...(mixedRanks ? { rank: { dModel: dims.dModel, max: s.adapter.rank, expected: rank } } : {}),
          });
          aggregator.add({ client: c.id, weights: u.weights, fisher: u.fisher, samples: u.sampleCount });
          upload += bytes.length;
          trainLosses.push(r.meanLoss);
          split += r.upBytes + r.downBytes;
          samples += r.samples;
        }
        const min = s.participation.minClients ?? 1;
        if (aggregator.count < min)
          throw new Error(`round ${round}: ${aggregator.count} updates, fewer than minClients ${min}`);
        global = aggregator.finish();
        evaluation = await trainer.evaluate(global, testExamples);
      }
      const record: RoundRecord = {
        round,
        method: sim.method === 'federated' ? strategy.name : sim.method,
        accuracy: evaluation.accuracy,
        loss: evaluation.loss,
        trainLoss: trainLosses.reduce((a, b) => a + b, 0) / trainLosses.length,
        clients: sim.method === 'centralized' ? 1 : selected.length,
        uploadBytesPerClient: upload / Math.max(1, selected.length),
        splitBytesPerSample: split / Math.max(1, samples),
        perType: perTypeAccuracy(evaluation),
        seconds: (performance.now() - t0) / 1000,
      };
      rounds.push(record);
      hooks.onRound?.(record, s.rounds);
    }
    const last = rounds.at(-1)!;
    return {
      name: config.metadata.name,
      method: sim.method,
      strategy: strategy.name,
      rounds,
      final: { accuracy: last.accuracy, perType: last.perType },
      clients: clients.map((c, i) => ({
        id: c.id,
        examples: c.examples.length,
        ...(mixedRanks ? { rank: rankOf(i) } : {}),
      })),
      adversaries: [...byzantine].map((i) => clients[i]!.id),
      testQuestions: testExamples.length,
      adapterParams,
      clientParams: trainer.clientParams,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await trainer.close();
    await model.close();
  }
}

/** Accuracy per question type, as the round records report it. */
export const perTypeAccuracy = (e: EvaluationResult): Record<string, number> =>
  Object.fromEntries(Object.entries(e.perType).map(([k, v]) => [k, v.correct / v.examples]));

function averageEvaluations(evals: EvaluationResult[]): EvaluationResult {
  const perType: Record<string, { examples: number; correct: number }> = {};
  for (const e of evals)
    for (const [k, v] of Object.entries(e.perType)) {
      const p = (perType[k] ??= { examples: 0, correct: 0 });
      p.examples += v.examples;
      p.correct += v.correct;
    }
  return {
    examples: evals[0]?.examples ?? 0,
    accuracy: evals.reduce((a, e) => a + e.accuracy, 0) / evals.length,
    loss: evals.reduce((a, e) => a + e.loss, 0) / evals.length,
    perType,
  };
}
