/**
 * The storage: objects by group-resource and namespace/name, one global resourceVersion counter (etcd's revision),
 * and a bounded history of changes that watches replay from (older resourceVersions are "compacted": 410 Gone).
 */
import type { KubeObject } from './util.js';

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface Change {
  rv: number;
  type: ChangeType;
  /** Group-resource key (`pods`, `federationrounds.fednano.io`). */
  gr: string;
  object: KubeObject;
  /** The previous state (MODIFIED, DELETED), for selector transitions. */
  prev?: KubeObject;
}

const key = (namespace: string | undefined, name: string) => `${namespace ?? ''}/${name}`;

export class Store {
  private rv: number;
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private readonly uids = new Map<string, { gr: string; key: string }>();
  private history: Change[] = [];
  /** Changes with rv <= compactedRv are gone from the history. */
  private compacted: number;
  private readonly listeners = new Set<(c: Change) => void>();

  constructor(
    private readonly historyLimit = 10_000,
    startRv = 1000,
  ) {
    this.rv = startRv;
    this.compacted = startRv;
  }

  get resourceVersion(): number {
    return this.rv;
  }
  get compactedRevision(): number {
    return this.compacted;
  }

  get(gr: string, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.objects.get(gr)?.get(key(namespace, name));
  }

  /** Objects of a group-resource (one namespace or all), sorted by namespace and name as etcd keys are. */
  list(gr: string, namespace?: string): KubeObject[] {
    const m = this.objects.get(gr);
    if (!m) return [];
    const out: KubeObject[] = [];
    for (const o of m.values()) if (namespace === undefined || o.metadata.namespace === namespace) out.push(o);
    return out.sort((a, b) => {
      const ka = key(a.metadata.namespace, a.metadata.name!);
      const kb = key(b.metadata.namespace, b.metadata.name!);
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
  }

  count(gr: string, namespace?: string): number {
    const m = this.objects.get(gr);
    if (!m) return 0;
    if (namespace === undefined) return m.size;
    let n = 0;
    for (const o of m.values()) if (o.metadata.namespace === namespace) n++;
    return n;
  }

  groupResources(): string[] {
    return [...this.objects.keys()];
  }

  byUid(uid: string): { gr: string; object: KubeObject } | undefined {
    const at = this.uids.get(uid);
    if (!at) return undefined;
    const o = this.objects.get(at.gr)?.get(at.key);
    return o ? { gr: at.gr, object: o } : undefined;
  }

  /** Stores a new or changed object (the caller has built a fresh object: stored objects are never mutated). */
  put(gr: string, object: KubeObject): KubeObject {
    const rv = ++this.rv;
    object.metadata.resourceVersion = String(rv);
    let m = this.objects.get(gr);
    if (!m) this.objects.set(gr, (m = new Map()));
    const k = key(object.metadata.namespace, object.metadata.name!);
    const prev = m.get(k);
    m.set(k, object);
    if (object.metadata.uid) this.uids.set(object.metadata.uid, { gr, key: k });
    this.record({ rv, type: prev ? 'MODIFIED' : 'ADDED', gr, object, prev });
    return object;
  }

  /** Removes an object; the DELETED event carries its last state with the deletion's resourceVersion. */
  remove(gr: string, object: KubeObject): KubeObject | undefined {
    const m = this.objects.get(gr);
    const k = key(object.metadata.namespace, object.metadata.name!);
    const prev = m?.get(k);
    if (!m || !prev) return undefined;
    m.delete(k);
    if (prev.metadata.uid) this.uids.delete(prev.metadata.uid);
    const rv = ++this.rv;
    // The object as it was last written: an update that removed the last finalizer deletes the updated object (its
    // DELETED event and the update's answer show it without the finalizer, as the real server's do).
    const last: KubeObject = { ...object, metadata: { ...object.metadata, resourceVersion: String(rv) } };
    this.record({ rv, type: 'DELETED', gr, object: last, prev });
    return last;
  }

  private record(c: Change) {
    this.history.push(c);
    if (this.history.length > this.historyLimit) {
      const drop = this.history.length - this.historyLimit;
      this.compacted = this.history[drop - 1]!.rv;
      this.history = this.history.slice(drop);
    }
    for (const l of this.listeners) l(c);
  }

  /** Changes after `rv`, or undefined when some of them were compacted away. */
  since(rv: number): Change[] | undefined {
    if (rv < this.compacted) return undefined;
    let lo = 0;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.history[mid]!.rv <= rv) lo = mid + 1;
      else hi = mid;
    }
    return this.history.slice(lo);
  }

  /** Forgets the whole history: watches from any older resourceVersion get 410 Gone. */
  compact(): void {
    this.compacted = this.rv;
    this.history = [];
  }

  subscribe(fn: (c: Change) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}
