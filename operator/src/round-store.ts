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

export type RoundChange = (f: FederationRef, round: number, doc: RoundDocument) => void;

/** A store that also reports every change of a round record (the round controller's trigger). */
export interface WatchedRoundStore extends RoundStore {
  watch(onChange: RoundChange): Promise<() => void>;
  close(): Promise<void>;
}

/** The federation's NATS account is not usable yet (identities not issued, or not yet loaded by the server). */
export class NatsAccountPending extends Error {
  override name = 'NatsAccountPending';
}

export class NatsRoundStore implements WatchedRoundStore {
  private constructor(
    private readonly nc: NatsConnection,
    private readonly storage: FederationStorage,
    private readonly jsm: JetStreamManager,
    private readonly ownsConnection: boolean,
  ) {}

  /** `ownsConnection`: close the connection with the store. */
  static async connect(nc: NatsConnection, ownsConnection = false): Promise<NatsRoundStore> {
    return new NatsRoundStore(nc, await ensureStorage(nc), await jetstreamManager(nc), ownsConnection);
  }

  async close(): Promise<void> {
    if (this.ownsConnection) await this.nc.drain().catch(() => {});
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
  async watch(onChange: RoundChange): Promise<() => void> {
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

/**
 * One store per federation account (per-federation NATS identities, wire's nats-auth): each federation's records live
 * in its own account, reached with the operator's user in that account. Connections open on first use and a
 * federation's watch starts with its connection; a connection refused because the server has not loaded the account
 * yet is a NatsAccountPending, retried on the next reconcile.
 */
export class AccountRoundStores implements WatchedRoundStore {
  private readonly stores = new Map<string, Promise<NatsRoundStore>>();
  private readonly stopWatches = new Map<string, () => void>();
  private onChange?: RoundChange;

  constructor(private readonly connect: (f: FederationRef) => Promise<NatsConnection>) {}

  private storeFor(f: FederationRef): Promise<NatsRoundStore> {
    const key = `${f.namespace}/${f.federation}`;
    let store = this.stores.get(key);
    if (!store) {
      store = (async () => {
        const s = await NatsRoundStore.connect(await this.connect(f), true);
        if (this.onChange) this.stopWatches.set(key, await s.watch(this.onChange));
        return s;
      })();
      this.stores.set(key, store);
      store.catch(() => this.stores.delete(key));
    }
    return store;
  }

  async read(f: FederationRef, round: number) {
    return (await this.storeFor(f)).read(f, round);
  }
  async open(spec: RoundSpec) {
    await (await this.storeFor(spec)).open(spec);
  }
  async forgetRound(f: FederationRef, round: number) {
    await (await this.storeFor(f)).forgetRound(f, round);
  }
  async forgetFederation(f: FederationRef) {
    const key = `${f.namespace}/${f.federation}`;
    const store = await this.storeFor(f);
    await store.forgetFederation(f);
    this.stopWatches.get(key)?.();
    this.stopWatches.delete(key);
    this.stores.delete(key);
    await store.close();
  }

  async watch(onChange: RoundChange): Promise<() => void> {
    this.onChange = onChange;
    return () => {
      for (const stop of this.stopWatches.values()) stop();
      this.stopWatches.clear();
    };
  }

  async close(): Promise<void> {
    for (const s of this.stores.values()) await (await s.catch(() => undefined))?.close();
    this.stores.clear();
  }
}
