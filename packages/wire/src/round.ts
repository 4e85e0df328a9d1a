import type { AdapterConfig, LocalTrainingConfig, RankMerge, StrategySpec, WireDType } from '@fednano/core';
import type { KV } from '@nats-io/kv';
import { type FederationRef, roundKey } from './names.js';

/**
 * One round's record in the `fednano-rounds` KV bucket: `spec` is written once by whoever opens the round
 * (`fednano run` or the operator), `status` only by the aggregator (compare-and-set on the entry's revision). It is
 * both the clients' instructions and the round's durable progress, so any party can restart and read where it is.
 */
export type RoundState = 'Open' | 'Collecting' | 'Aggregated' | 'Failed';

export interface RoundSpec extends FederationRef {
  round: number;
  /** Clients expected to send an update. */
  participants: string[];
  /** Fewest accepted updates that make the round succeed at its deadline. */
  minClients: number;
  /** ISO time after which the round is decided with what has arrived. */
  deadline: string;
  /** The global adapter clients start from (the previous round's result). */
  baseAdapter: { object: string; sha256: string };
  /** rank: the global adapter's; rankMerge: how updates of mixed ranks merge (with `ranks`). */
  adapter: AdapterConfig & { rankMerge?: RankMerge };
  /**
   * Heterogeneous clients: the adapter rank of each participant whose rank is not adapter.rank (absent: all are).
   * Such a client trains from the global adapter's projection to its rank and declares the rank in its update.
   */
  ranks?: Record<string, number>;
  dModel: number;
  strategy: StrategySpec;
  training: Omit<LocalTrainingConfig, 'seed' | 'proximalMu'> & { fisherSamples: number };
  /** Per-client training seeds, so a round is reproducible (and matches `simulate` with the same seed). */
  seeds: Record<string, number>;
  updateEncoding: WireDType;
}

export interface AcceptedUpdate {
  client: string;
  /** Stream sequence of the message, to replay it after a restart. */
  seq: number;
  samples: number;
  loss: number;
  bytes: number;
}

export interface RejectedUpdate {
  client: string;
  seq: number;
  reason: string;
  message: string;
}

/**
 * The aggregator's score of the round's global adapter on the federation's held-out set (a shard it reads from its
 * evaluation volume), with the frozen model in its own process.
 */
export interface RoundEvaluation {
  /** Held-out questions scored. */
  examples: number;
  /** Closed-set accuracy, a ratio in [0, 1]. */
  accuracy: number;
  /** Mean NLL of the correct answer. */
  loss: number;
  /** Accuracy per question type. */
  perType: Record<string, number>;
  /** The adapter scored (the round's result). */
  sha256: string;
}

export interface RoundStatus {
  state: RoundState;
  accepted: AcceptedUpdate[];
  rejected: RejectedUpdate[];
  /** Duplicates dropped (same client twice): counted, never aggregated. */
  duplicates: number;
  result?: { object: string; sha256: string };
  metrics?: { meanTrainLoss: number; meanUpdateBytes: number };
  /** The result's score on the held-out set, when the aggregator has one and could score it. */
  evaluation?: RoundEvaluation;
  /** Why an aggregated round has no evaluation (the held-out set is missing or unreadable); the round still counts. */
  evaluationError?: string;
  /** Why the round failed, or which participants were missing at the deadline. */
  message?: string;
  updatedAt: string;
}

export interface RoundDocument {
  spec: RoundSpec;
  status: RoundStatus;
}

export const isFinished = (s: RoundState): boolean => s === 'Aggregated' || s === 'Failed';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function parseRoundDocument(bytes: Uint8Array, key: string): RoundDocument {
  let doc: RoundDocument;
  try {
    doc = JSON.parse(decoder.decode(bytes)) as RoundDocument;
  } catch (e) {
    throw new Error(`round entry '${key}' is not JSON: ${(e as Error).message}`);
  }
  if (!doc?.spec || !doc.status || !Array.isArray(doc.spec.participants))
    throw new Error(`round entry '${key}' lacks spec.participants or status`);
  return doc;
}

export const encodeRoundDocument = (doc: RoundDocument): Uint8Array => encoder.encode(JSON.stringify(doc));

export async function readRound(
  kv: KV,
  f: FederationRef,
  round: number,
): Promise<{ doc: RoundDocument; revision: number } | undefined> {
  const key = roundKey(f, round);
  const e = await kv.get(key);
  if (e?.operation !== 'PUT' || e.value.length === 0) return undefined;
  return { doc: parseRoundDocument(e.value, key), revision: e.revision };
}

/** Creates the round's entry; fails if it exists (a round index is used once). */
export async function openRound(kv: KV, spec: RoundSpec): Promise<void> {
  const doc: RoundDocument = {
    spec,
    status: { state: 'Open', accepted: [], rejected: [], duplicates: 0, updatedAt: new Date().toISOString() },
  };
  await kv.create(roundKey(spec, spec.round), encodeRoundDocument(doc));
}

/**
 * Read-modify-write of a round's status with compare-and-set, retried on a concurrent write. `change` returns the
 * new status, or undefined to leave the entry as it is.
 */
export async function updateRoundStatus(
  kv: KV,
  f: FederationRef,
  round: number,
  change: (doc: RoundDocument) => RoundStatus | undefined,
): Promise<RoundDocument> {
  for (let attempt = 0; ; attempt++) {
    const current = await readRound(kv, f, round);
    if (!current) throw new Error(`round ${roundKey(f, round)} does not exist`);
    const status = change(current.doc);
    if (!status) return current.doc;
    const doc = { spec: current.doc.spec, status: { ...status, updatedAt: new Date().toISOString() } };
    try {
      await kv.update(roundKey(f, round), encodeRoundDocument(doc), current.revision);
      return doc;
    } catch (e) {
      if (attempt >= 20 || !/wrong last sequence/i.test((e as Error).message)) throw e;
    }
  }
}

/** Waits until the round's entry satisfies `done` (via a KV watch), returning that document. */
export async function waitForRound(
  kv: KV,
  f: FederationRef,
  round: number,
  done: (doc: RoundDocument) => boolean,
  o: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<RoundDocument> {
  const key = roundKey(f, round);
  const watch = await kv.watch({ key });
  const timer = o.timeoutMs ? setTimeout(() => watch.stop(), o.timeoutMs) : undefined;
  o.signal?.addEventListener('abort', () => watch.stop());
  try {
    for await (const e of watch) {
      if (e.operation !== 'PUT' || e.value.length === 0) continue;
      const doc = parseRoundDocument(e.value, key);
      if (done(doc)) return doc;
    }
  } finally {
    clearTimeout(timer);
    watch.stop();
  }
  throw new Error(`round ${key}: gave up waiting${o.timeoutMs ? ` after ${o.timeoutMs} ms` : ''}`);
}

/**
 * Records round 0: the initial adapter, as an aggregated round without participants. Does nothing if it exists
 * (a concurrent writer may win; both wrote the same deterministic adapter).
 */
export async function writeInitialRound(
  kv: KV,
  f: FederationRef,
  init: {
    dModel: number;
    adapter: AdapterConfig & { seed: number };
    object: string;
    sha256: string;
    evaluation?: Pick<RoundStatus, 'evaluation' | 'evaluationError'>;
  },
): Promise<void> {
  const now = new Date().toISOString();
  const doc: RoundDocument = {
    spec: {
      ...f,
      round: 0,
      participants: [],
      minClients: 0,
      deadline: now,
      baseAdapter: { object: init.object, sha256: init.sha256 },
      adapter: { rank: init.adapter.rank, alpha: init.adapter.alpha },
      dModel: init.dModel,
      strategy: { name: 'fedavg' },
      training: { steps: 0, batchSize: 0, learningRate: 0, optimizer: 'sgd', fisherSamples: 0 },
      seeds: { initial: init.adapter.seed },
      updateEncoding: 'float32',
    },
    status: {
      state: 'Aggregated',
      accepted: [],
      rejected: [],
      duplicates: 0,
      result: { object: init.object, sha256: init.sha256 },
      ...init.evaluation,
      updatedAt: now,
    },
  };
  try {
    await kv.create(roundKey(f, 0), encodeRoundDocument(doc));
  } catch (e) {
    if (!/wrong last sequence|exists/i.test((e as Error).message)) throw e;
  }
}
