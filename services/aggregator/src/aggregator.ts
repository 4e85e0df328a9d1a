import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type AdapterConfig, type AdapterWeights, adapterShapes, initAdapters, UpdateRejected } from '@fednano/core';
import { crashPoint, type Logger } from '@fednano/service-kit';
import {
  type AcceptedUpdate,
  adapterObject,
  aggregatorDurable,
  ensureStorage,
  type FederationRef,
  type FederationStorage,
  federationRoundsKeys,
  federationUpdatesFilter,
  getAdapter,
  isFinished,
  PayloadError,
  parseRoundDocument,
  parseUpdateSubject,
  putAdapter,
  type RejectedUpdate,
  type RoundDocument,
  type RoundStatus,
  readRound,
  UPDATES_STREAM,
  updatePayload,
  updateRoundStatus,
  writeInitialRound,
} from '@fednano/wire';
import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import type { KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import type { RoundEvaluator } from './evaluation.js';
import type { AggregatorMetrics } from './metrics.js';
import { RoundCollection, StrategyCache } from './round-collection.js';
import { retryWhileUnavailable } from './store-retry.js';

export interface AggregatorOptions extends FederationRef {
  /** How long JetStream waits for an ack before redelivering (covers a crash between receipt and commit). */
  ackWaitMs: number;
  maxUpdateBytes: number;
  metrics: AggregatorMetrics;
  log: Logger;
  /**
   * How long a store operation keeps retrying while NATS is unavailable (a server restart, a broken link) before the
   * process gives up and exits for a restart to rebuild it (default 60 s).
   */
  storeRetryMs?: number;
  /**
   * Scores each new global adapter on the federation's held-out set before the round is recorded as aggregated
   * (accuracy beside the training loss). Without one, rounds carry no evaluation.
   */
  evaluator?: RoundEvaluator;
}

const nanos = (ms: number) => ms * 1_000_000;

/**
 * One federation's aggregator. Updates arrive on a durable JetStream consumer; the round's record in the KV bucket
 * is the commit log: an update counts once its client is in `status.accepted` (with the stream sequence of its
 * message), and only then is the message acked. After a crash, the collection is rebuilt by replaying the accepted
 * sequences from the stream; redelivered messages of counted clients are dropped as duplicates. So a restart at any
 * point loses nothing and counts nothing twice. All work runs one item at a time through `serial`.
 */
export class Aggregator {
  private storage!: FederationStorage;
  private jsm!: JetStreamManager;
  private messages?: ConsumerMessages;
  private stopWatch?: () => void;
  private active?: RoundCollection;
  private deadlineTimer?: NodeJS.Timeout;
  private readonly strategies = new StrategyCache();
  private queue: Promise<void> = Promise.resolve();
  private pending?: {
    round: number;
    accepted: AcceptedUpdate[];
    rejected: RejectedUpdate[];
    duplicates: number;
    messages: [JsMsg, 'ack' | 'term'][];
  };
  private flushQueued = false;
  private stopped = false;
  /** Rounds at or below this index are decided; late watch events about them are ignored. */
  private decidedUpTo = 0;
  ready = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly o: AggregatorOptions,
  ) {}

  private get f(): FederationRef {
    return { namespace: this.o.namespace, federation: this.o.federation };
  }

  /**
   * A store operation that rides out a NATS outage: retried while NATS is unavailable, for up to `storeRetryMs`.
   * Only for operations that are safe to repeat (their first attempt may have landed with its reply lost).
   */
  private store<T>(what: string, op: () => Promise<T>): Promise<T> {
    return retryWhileUnavailable(op, {
      budgetMs: this.o.storeRetryMs ?? 60_000,
      onRetry: (r) => this.o.log.warn({ ...r, what }, 'NATS unavailable; retrying'),
    });
  }

  /** Runs `work` after everything queued before it; failures of the store are fatal (crash-only recovery). */
  private serial(work: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(work).catch((e: Error) => {
      this.o.log.fatal({ err: e }, 'aggregator state could not be recorded; exiting so a restart rebuilds it');
      process.exit(1);
    });
    return this.queue;
  }

  async start(): Promise<void> {
    this.storage = await ensureStorage(this.nc);
    this.jsm = await jetstreamManager(this.nc);
    const durable = aggregatorDurable(this.f);
    await this.jsm.consumers.add(UPDATES_STREAM, {
      durable_name: durable,
      filter_subject: federationUpdatesFilter(this.f),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(this.o.ackWaitMs),
      max_ack_pending: 1000,
    });
    // Round records first, so an update for an open round finds its collection.
    const watch = await this.storage.kv.watch({ key: federationRoundsKeys(this.f) });
    this.stopWatch = () => watch.stop();
    const initial = new Promise<void>((resolve) => {
      (async () => {
        for await (const e of watch) {
          void this.serial(() => this.onRoundEntry(e));
          if (e.delta === 0) resolve();
        }
        resolve();
      })();
      // An empty bucket yields no entries at all.
      setTimeout(resolve, 500).unref();
    });
    await initial;
    await this.queue;
    const consumer = await jetstream(this.nc).consumers.get(UPDATES_STREAM, durable);
    this.messages = await consumer.consume({ max_messages: 64 });
    (async () => {
      // Not awaited: messages queue up behind each other, so a flush commits all that arrived meanwhile.
      for await (const m of this.messages!) void this.serial(() => this.onMessage(m));
    })().catch((e: Error) => this.o.log.error({ err: e }, 'consumer stopped'));
    this.ready = true;
    this.o.log.info({ durable }, 'aggregator ready');
  }

  /** Stops taking messages and finishes the one in hand; unacked messages are redelivered to the next instance. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.ready = false;
    clearTimeout(this.deadlineTimer);
    this.stopWatch?.();
    this.messages?.stop();
    await this.queue;
  }

  /**
   * Round 0 is the initial adapter, recorded as an aggregated round without participants, so that round 1 finds its
   * base like every later round. Idempotent; the model folder gives d_model.
   */
  async ensureInitialAdapter(modelPath: string, adapter: { rank: number; alpha: number; seed: number }): Promise<void> {
    if (await readRound(this.storage.kv, this.f, 0)) return;
    const manifest = JSON.parse(await readFile(join(modelPath, 'manifest.json'), 'utf8')) as {
      config?: { dModel?: number };
    };
    const dModel = manifest.config?.dModel;
    if (!dModel) throw new Error(`${modelPath}/manifest.json has no config.dModel`);
    const shapes = adapterShapes(dModel, adapter.rank);
    const object = adapterObject(this.f, 0);
    const weights = initAdapters(dModel, adapter, adapter.seed);
    const sha256 = await putAdapter(this.storage.objects, object, weights, shapes);
    // The starting point's accuracy too, so that every round's gain can be read off the records.
    const evaluation = await this.evaluate(0, adapter, weights, sha256);
    await writeInitialRound(this.storage.kv, this.f, { dModel, adapter, object, sha256, evaluation });
    this.o.log.info({ sha256, dModel, rank: adapter.rank }, 'initial adapter written (round 0)');
  }

  /**
   * The adapter's score on the held-out set, as the round record carries it. A missing or broken held-out set is
   * recorded as `evaluationError` and never fails the round: the adapter is valid whether or not it can be scored.
   */
  private async evaluate(
    round: number,
    adapter: AdapterConfig,
    weights: AdapterWeights,
    sha256: string,
  ): Promise<Pick<RoundStatus, 'evaluation' | 'evaluationError'>> {
    const evaluator = this.o.evaluator;
    if (!evaluator) return {};
    const log = this.o.log.child({ round });
    const end = this.o.metrics.evaluationDuration.startTimer();
    try {
      const r = await evaluator.evaluate(adapter, weights);
      const perType = Object.fromEntries(Object.entries(r.perType).map(([k, v]) => [k, v.correct / v.examples]));
      end();
      this.o.metrics.evaluations.inc({ outcome: 'ok' });
      this.o.metrics.accuracy.set(r.accuracy);
      log.info({ accuracy: r.accuracy, loss: r.loss, examples: r.examples, sha256 }, 'global adapter evaluated');
      return { evaluation: { examples: r.examples, accuracy: r.accuracy, loss: r.loss, perType, sha256 } };
    } catch (e) {
      this.o.metrics.evaluations.inc({ outcome: 'failed' });
      const message = (e as Error).message;
      log.warn({ err: e, sha256 }, 'global adapter not evaluated; the round counts without an accuracy');
      return { evaluationError: message };
    }
  }

  // ---- rounds ---------------------------------------------------------------------------------------------

  private async onRoundEntry(e: KvWatchEntry): Promise<void> {
    if (this.stopped || e.operation !== 'PUT' || e.value.length === 0) return;
    // Most entries are this process's own writes to the active round: skip them without parsing.
    const n = Number(e.key.slice(e.key.lastIndexOf('.') + 1));
    if (n <= this.decidedUpTo || (this.active && this.active.round >= n)) return;
    const event = parseRoundDocument(e.value, e.key);
    if (event.spec.round <= this.decidedUpTo) return;
    if (this.active && this.active.round >= event.spec.round) return;
    // Watch events can lag behind this process's own writes: act on the record as it is now.
    const doc = (await readRound(this.storage.kv, this.f, event.spec.round))?.doc;
    if (!doc) return;
    if (isFinished(doc.status.state)) {
      this.decidedUpTo = Math.max(this.decidedUpTo, doc.spec.round);
      return;
    }
    await this.activate(doc);
  }

  private deactivate(): void {
    clearTimeout(this.deadlineTimer);
    this.active = undefined;
    this.o.metrics.activeRound.set(0);
  }

  /** Starts collecting a round: base adapter, strategy, and a replay of what the KV record says was counted. */
  private async activate(doc: RoundDocument): Promise<void> {
    const spec = doc.spec;
    const log = this.o.log.child({ round: spec.round });
    const strategy = this.strategies.get(spec.strategy);
    const probe = new RoundCollection(spec, strategy, new Map(), this.o.maxUpdateBytes);
    const base = await getAdapter(this.storage.objects, spec.baseAdapter.object, probe.shapes, spec.baseAdapter.sha256);
    const c = new RoundCollection(spec, strategy, base, this.o.maxUpdateBytes);
    for (const a of doc.status.accepted) {
      const stored = await this.jsm.streams.getMessage(UPDATES_STREAM, { seq: a.seq });
      if (!stored) throw new Error(`accepted update of ${a.client} (stream seq ${a.seq}) is no longer in the stream`);
      c.add(a.client, (await updatePayload(stored, this.storage.uploads)).bytes);
    }
    for (const x of doc.status.rejected) c.markAnswered(x.client);
    this.active = c;
    this.o.metrics.activeRound.set(spec.round);
    if (doc.status.accepted.length) log.info({ replayed: doc.status.accepted.length }, 'round resumed from its record');
    else log.info({ participants: spec.participants.length, deadline: spec.deadline }, 'round opened');
    if (doc.status.state === 'Open')
      await updateRoundStatus(this.storage.kv, this.f, spec.round, (d) =>
        d.status.state === 'Open' ? { ...d.status, state: 'Collecting' } : undefined,
      );
    const wait = Date.parse(spec.deadline) - Date.now();
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = setTimeout(
      () => void this.serial(() => this.decide(spec.round, 'deadline')),
      Math.max(0, wait),
    );
    await this.decide(spec.round, 'complete');
  }

  /**
   * Ends the round when everyone has answered ('complete') or the deadline passed ('deadline'): aggregated when at
   * least minClients updates were accepted, failed otherwise.
   */
  private async decide(round: number, why: 'complete' | 'deadline'): Promise<void> {
    const c = this.active;
    if (!c || c.round !== round) return;
    await this.commit(); // the aggregate may include staged updates: record them before deciding
    const current = (await this.store('read round', () => readRound(this.storage.kv, this.f, round)))?.doc;
    if (!current || isFinished(current.status.state)) {
      this.decidedUpTo = Math.max(this.decidedUpTo, round);
      return this.deactivate();
    }
    const s = current.status;
    const answered = new Set([...s.accepted, ...s.rejected].map((u) => u.client));
    const missing = c.spec.participants.filter((p) => !answered.has(p));
    if (why === 'complete' && missing.length) return;
    const log = this.o.log.child({ round });
    const end = this.o.metrics.finishDuration.startTimer();
    let status: RoundStatus;
    if (s.accepted.length >= c.spec.minClients) {
      const weights = c.finish();
      const object = adapterObject(this.f, round);
      const sha256 = await this.store('write adapter', () =>
        putAdapter(this.storage.objects, object, weights, c.shapes),
      );
      crashPoint('aggregator:adapter-written'); // the adapter is stored, the round not yet marked Aggregated
      // Scored before the round is marked Aggregated, so that whoever waits for the round finds its accuracy with it.
      const evaluation = await this.evaluate(round, c.spec.adapter, weights, sha256);
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
      status = {
        ...s,
        state: 'Aggregated',
        result: { object, sha256 },
        metrics: {
          meanTrainLoss: mean(s.accepted.map((a) => a.loss)),
          meanUpdateBytes: mean(s.accepted.map((a) => a.bytes)),
        },
        ...evaluation,
        message: missing.length ? `deadline passed without updates from ${missing.join(', ')}` : undefined,
      };
      log.info({ accepted: s.accepted.length, rejected: s.rejected.length, missing, sha256 }, 'round aggregated');
    } else {
      status = {
        ...s,
        state: 'Failed',
        message: `quorum not met: ${s.accepted.length} accepted updates, minClients is ${c.spec.minClients}${missing.length ? `; no update from ${missing.join(', ')}` : ''}`,
      };
      log.warn({ accepted: s.accepted.length, minClients: c.spec.minClients, missing }, 'round failed');
    }
    await this.store('decide round', () =>
      updateRoundStatus(this.storage.kv, this.f, round, (d) => (isFinished(d.status.state) ? undefined : status)),
    );
    this.o.metrics.rounds.inc({ outcome: status.state });
    end();
    this.decidedUpTo = Math.max(this.decidedUpTo, round);
    this.deactivate();
  }

  // ---- updates --------------------------------------------------------------------------------------------

  /**
   * Validates one update against the active round and stages the outcome. Staged outcomes are committed to the
   * round's record together (group commit: one KV write for every message handled since the last one), and only
   * then are their messages acknowledged.
   */
  private async onMessage(m: JsMsg): Promise<void> {
    if (this.stopped) return; // not acked: redelivered to the next instance
    this.o.metrics.received.inc();
    const parsed = parseUpdateSubject(m.subject);
    if (!parsed) return this.drop(m, undefined, '?', 'subject', `'${m.subject}' is not an update subject`);
    const { round, client } = parsed;
    const c = this.active;
    if (!c || c.round !== round) {
      const doc = (await readRound(this.storage.kv, this.f, round))?.doc;
      if (!doc) return this.drop(m, round, client, 'unknown-round', `round ${round} was never opened`);
      if (isFinished(doc.status.state))
        return this.drop(m, round, client, 'stale-round', `round ${round} is already ${doc.status.state}`);
      m.nak(500); // the round's record arrived after its first update: try again shortly
      return;
    }
    if (c.answered(client)) {
      this.o.metrics.duplicates.inc();
      this.o.log.info({ round, client, seq: m.seq }, 'duplicate update dropped');
      return this.stage(round, m, 'ack', { duplicate: true });
    }
    if (!c.spec.participants.includes(client))
      return this.refuse(c, m, client, 'not-participant', `${client} is not a participant of round ${round}`);
    let payload: { bytes: Uint8Array; byReference: boolean };
    try {
      payload = await this.store('read update', () => updatePayload(m, this.storage.uploads));
    } catch (e) {
      if (e instanceof PayloadError) return this.refuse(c, m, client, 'payload', e.message);
      throw e;
    }
    let added: { samples: number; loss: number };
    try {
      added = c.add(client, payload.bytes);
    } catch (e) {
      if (e instanceof UpdateRejected) return this.refuse(c, m, client, e.reason, e.message);
      throw e;
    }
    if (payload.byReference) this.o.metrics.byReference.inc();
    this.o.metrics.updateBytes.observe(payload.bytes.length);
    this.o.log.info(
      { round, client, seq: m.seq, bytes: payload.bytes.length, samples: added.samples },
      'update accepted',
    );
    this.stage(round, m, 'ack', { accepted: { client, seq: m.seq, bytes: payload.bytes.length, ...added } });
  }

  /** A refused update of the active round: recorded with its reason, so the client counts as answered. */
  private refuse(c: RoundCollection, m: JsMsg, client: string, reason: string, message: string): void {
    c.markAnswered(client);
    this.o.metrics.rejected.inc({ reason });
    this.o.log.warn({ round: c.round, client, reason, seq: m.seq }, message);
    this.stage(c.round, m, 'term', { rejected: { client, seq: m.seq, reason, message } });
  }

  /** A message that belongs to no open round: counted and dropped, nothing to record. */
  private drop(m: JsMsg, round: number | undefined, client: string, reason: string, message: string): void {
    this.o.metrics.rejected.inc({ reason });
    this.o.log.warn({ round, client, reason, seq: m.seq }, message);
    m.term();
  }

  private stage(
    round: number,
    m: JsMsg,
    how: 'ack' | 'term',
    change: { accepted?: AcceptedUpdate; rejected?: RejectedUpdate; duplicate?: boolean },
  ): void {
    const p = (this.pending ??= { round, accepted: [], rejected: [], duplicates: 0, messages: [] });
    if (change.accepted) p.accepted.push(change.accepted);
    if (change.rejected) p.rejected.push(change.rejected);
    if (change.duplicate) p.duplicates++;
    p.messages.push([m, how]);
    if (!this.flushQueued) {
      this.flushQueued = true;
      void this.serial(() => this.flush());
    }
  }

  private async flush(): Promise<void> {
    this.flushQueued = false;
    const round = await this.commit();
    if (round !== undefined) await this.decide(round, 'complete');
  }

  /** Writes the staged outcomes in one compare-and-set write, then acknowledges their messages. */
  private async commit(): Promise<number | undefined> {
    const p = this.pending;
    this.pending = undefined;
    if (!p) return undefined;
    const outcomes = new Set([...p.accepted, ...p.rejected].map((u) => u.seq));
    await this.store('commit', () =>
      updateRoundStatus(this.storage.kv, this.f, p.round, (d) => {
        // A retry whose earlier attempt landed (its reply lost to the outage) finds these entries there already; a
        // write is all or nothing, so one of them present means all are. (A batch of duplicates alone carries no
        // entry to recognise: its count may then be added twice; status.duplicates is informational.)
        if ([...d.status.accepted, ...d.status.rejected].some((u) => outcomes.has(u.seq))) return undefined;
        return {
          ...d.status,
          accepted: [...d.status.accepted, ...p.accepted],
          rejected: [...d.status.rejected, ...p.rejected],
          duplicates: d.status.duplicates + p.duplicates,
        };
      }),
    );
    for (const [m, how] of p.messages) how === 'ack' ? m.ack() : m.term();
    this.o.metrics.accepted.inc(p.accepted.length);
    return p.round;
  }
}
