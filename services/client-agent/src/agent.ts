import {
  adapterShapes,
  createStrategy,
  type Dims,
  encodeUpdate,
  fisherDiagonal,
  type LlmHost,
  projectAdapter,
  trainLocal,
} from '@fednano/core';
import { readShard } from '@fednano/data';
import { imageTokenCount, loadModelFolder, openModel } from '@fednano/model';
import type { Logger } from '@fednano/service-kit';
import { NanoEdgeCache, prepareExamples } from '@fednano/simulation';
import {
  type FederationRef,
  getAdapter,
  isFinished,
  openStorage,
  progressSubject,
  publishUpdate,
  type RoundDocument,
  readRound,
  waitForRound,
} from '@fednano/wire';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';

export interface AgentOptions extends FederationRef {
  round: number;
  client: string;
  /** Model folder with the NanoEdge (encoder, connector, embeddings). */
  modelPath: string;
  /** The client's data (a shard folder). */
  dataPath: string;
  /** How long to wait for the round to be opened. */
  waitMs: number;
  /** Label-private split training: the llm-host never receives this client's targets (answers). */
  labelPrivate?: boolean;
  /** With labelPrivate: randomized-response rate on the labels the gradients use (0: exact). */
  labelNoise?: number;
  log: Logger;
}

export type AgentOutcome =
  | { kind: 'published'; seq: number; duplicate: boolean; byReference: boolean; bytes: number; loss: number }
  | { kind: 'already-counted' }
  | { kind: 'round-finished'; state: string };

export class AgentError extends Error {
  override name = 'AgentError';
}

/**
 * One client's part in one round. Idempotent: a restarted agent whose update was already counted does nothing, and a
 * second publish of the same round is dropped by the stream's message-id de-duplication.
 */
export async function runClientRound(nc: NatsConnection, host: LlmHost, o: AgentOptions): Promise<AgentOutcome> {
  const { log } = o;
  const { kv, objects, uploads } = await openStorage(nc);
  const progress = (body: Record<string, unknown>) =>
    nc.publish(progressSubject(o, o.round, o.client), JSON.stringify({ client: o.client, round: o.round, ...body }));

  const doc: RoundDocument =
    (await readRound(kv, o, o.round))?.doc ??
    (await waitForRound(kv, o, o.round, () => true, { timeoutMs: o.waitMs }).catch(() => {
      throw new AgentError(`round ${o.round} of ${o.namespace}/${o.federation} was not opened within ${o.waitMs} ms`);
    }));
  const spec = doc.spec;
  if (!spec.participants.includes(o.client))
    throw new AgentError(
      `${o.client} is not a participant of round ${o.round} (participants: ${spec.participants.join(', ')})`,
    );
  if (isFinished(doc.status.state)) return { kind: 'round-finished', state: doc.status.state };
  if ([...doc.status.accepted, ...doc.status.rejected].some((u) => u.client === o.client))
    return { kind: 'already-counted' };

  const global = await getAdapter(
    objects,
    spec.baseAdapter.object,
    adapterShapes(spec.dModel, spec.adapter.rank),
    spec.baseAdapter.sha256,
  );
  log.info({ base: spec.baseAdapter.sha256.slice(0, 12) }, 'global adapter fetched and verified');
  // Heterogeneous clients: this client trains its own rank, from the global adapter's projection to it.
  const rank = spec.ranks?.[o.client] ?? spec.adapter.rank;
  const adapter = { rank, alpha: spec.adapter.alpha };
  const shapes = adapterShapes(spec.dModel, rank);
  const start = spec.ranks
    ? projectAdapter(global, rank, {
        dModel: spec.dModel,
        adapter: { rank: spec.adapter.rank, alpha: spec.adapter.alpha },
        merge: spec.adapter.rankMerge ?? 'svd',
      })
    : global;

  const folder = await loadModelFolder(o.modelPath);
  const cfg = folder.manifest.config;
  const dims: Dims = { imageTokens: imageTokenCount(cfg), contextLength: cfg.contextLength, dModel: cfg.dModel };
  if (cfg.dModel !== spec.dModel)
    throw new AgentError(`the NanoEdge at ${o.modelPath} has d_model ${cfg.dModel}, the round expects ${spec.dModel}`);
  const shard = await readShard(o.dataPath); // local problems first, before waiting on the llm-host
  const info = await host.info();
  if (info.dModel !== dims.dModel || info.contextLength !== dims.contextLength)
    throw new AgentError(
      `llm-host serves d_model ${info.dModel} / context ${info.contextLength}, the NanoEdge has ${dims.dModel} / ${dims.contextLength}`,
    );
  const model = await openModel(folder);
  let examples: Awaited<ReturnType<typeof prepareExamples>>;
  try {
    examples = await prepareExamples(new NanoEdgeCache(model), shard.sets, shard.questions);
  } finally {
    await model.close();
  }
  if (examples.length === 0) throw new AgentError(`no questions in ${o.dataPath}`);
  log.info({ examples: examples.length, labelPrivate: o.labelPrivate ?? false }, 'local data loaded');

  const strategy = createStrategy(spec.strategy);
  const seed = spec.seeds[o.client];
  if (seed === undefined) throw new AgentError(`round ${o.round} has no training seed for ${o.client}`);
  const started = performance.now();
  progress({ phase: 'training', step: 0, steps: spec.training.steps });
  const trained = await trainLocal(
    host,
    dims,
    adapter,
    start,
    examples,
    {
      ...spec.training,
      seed,
      proximalMu: strategy.clientConfig().proximalMu,
      labelPrivate: o.labelPrivate,
      labelNoise: o.labelNoise,
    },
    (step, loss) => progress({ phase: 'training', step: step + 1, steps: spec.training.steps, loss }),
  );
  let fisher: Awaited<ReturnType<typeof fisherDiagonal>> | undefined;
  if (strategy.needsFisher) {
    progress({ phase: 'fisher' });
    fisher = await fisherDiagonal(host, dims, adapter, trained.weights, examples, {
      maxSamples: spec.training.fisherSamples,
      labelPrivate: o.labelPrivate,
      labelNoise: o.labelNoise,
      seed,
    });
  }
  const bytes = encodeUpdate(
    {
      namespace: o.namespace,
      federation: o.federation,
      round: o.round,
      clientId: o.client,
      baseAdapterSha256: spec.baseAdapter.sha256,
      sampleCount: examples.length,
      weights: trained.weights,
      fisher,
      metrics: {
        loss: trained.meanLoss,
        steps: trained.steps,
        seconds: (performance.now() - started) / 1000,
        splitUpBytes: trained.upBytes,
        splitDownBytes: trained.downBytes,
      },
      ...(spec.ranks ? { rank } : {}),
    },
    { shapes, dtype: spec.updateEncoding },
  );
  const published = await publishUpdate(nc, jetstream(nc), uploads, o, o.round, o.client, bytes);
  progress({ phase: 'published', loss: trained.meanLoss, bytes: bytes.length });
  return {
    kind: 'published',
    seq: published.ack.seq,
    duplicate: published.ack.duplicate,
    byReference: published.byReference,
    bytes: bytes.length,
    loss: trained.meanLoss,
  };
}
