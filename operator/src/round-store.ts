import {
  aggregatorDurable,
  ensureStorage,
  type FederationRef,
  type FederationStorage,
  federationRoundsKeys,
  openRound,
  parseRoundDocument,
  type RoundDocument,
  type RoundSpec,
  readRound,
  roundKey,
  UPDATES_STREAM,
} from '@fednano/wire';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';

/** The operator's view of NATS: round records to read and open, and cleanup for finalizers. */
export interface RoundStore {
  read(f: FederationRef, round: number): Promise<RoundDocument | undefined>;
  /** Opens a round; a record that already exists is left as it is (idempotent). */
  open(spec: RoundSpec): Promise<void>;
  /** Removes a round's record, its adapter and any update objects. */
  forgetRound(f: FederationRef, round: number): Promise<void>;
  /** Removes everything of a federation: records, adapters, its updates in the stream, the aggregator's consumer. */
  forgetFederation(f: FederationRef): Promise<void>;
}

export class NatsRoundStore implements RoundStore {
  private constructor(
    private readonly storage: FederationStorage,
    private readonly jsm: JetStreamManager,
  ) {}

  static async connect(nc: NatsConnection): Promise<NatsRoundStore> {
    return new NatsRoundStore(await ensureStorage(nc), await jetstreamManager(nc));
  }

  get kv() {
    return this.storage.kv;
  }

  async read(f: FederationRef, round: number) {
    return (await readRound(this.storage.kv, f, round))?.doc;
  }

  async open(spec: RoundSpec) {
    try {
      await openRound(this.storage.kv, spec);
    } catch (e) {
      if (!/wrong last sequence|exists/i.test((e as Error).message)) throw e;
    }
  }

  private async deleteObjects(match: (name: string) => boolean) {
    for (const store of [this.storage.objects, this.storage.uploads]) {
      const list = await store.list();
      for (const o of list) if (match(o.name)) await store.delete(o.name);
    }
  }

  async forgetRound(f: FederationRef, round: number) {
    await this.storage.kv.purge(roundKey(f, round));
    // Exactly this round's adapter and its updates (round-1 must not take round-10 with it).
    const adapter = `${f.namespace}/${f.federation}/round-${round}`;
    await this.deleteObjects((name) => name === adapter || name.startsWith(`${adapter}/`));
  }

  async forgetFederation(f: FederationRef) {
    const keys = await this.storage.kv.keys(federationRoundsKeys(f));
    for await (const k of keys) await this.storage.kv.purge(k);
    await this.deleteObjects((name) => name.startsWith(`${f.namespace}/${f.federation}/`));
    await this.jsm.streams.purge(UPDATES_STREAM, { filter: `fednano.${f.namespace}.${f.federation}.>` });
    await this.jsm.consumers.delete(UPDATES_STREAM, aggregatorDurable(f)).catch(() => false);
  }

  /** Calls `onChange(f, round)` for every change of any round record (the round controller's trigger). */
  async watch(onChange: (f: FederationRef, round: number, doc: RoundDocument) => void): Promise<() => void> {
    const w = await this.storage.kv.watch({ key: '>' });
    (async () => {
      for await (const e of w) {
        if (e.operation !== 'PUT' || e.value.length === 0) continue;
        const doc = parseRoundDocument(e.value, e.key);
        onChange({ namespace: doc.spec.namespace, federation: doc.spec.federation }, doc.spec.round, doc);
      }
    })().catch(() => {});
    return () => w.stop();
  }
}
