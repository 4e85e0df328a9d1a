/**
 * The controller-manager parts the API semantics depend on, run asynchronously after each change (as the real ones
 * are): the garbage collector (ownerReferences: background and foreground cascading deletion, dangling owners), the
 * namespace controller (deleting a namespace deletes its content) and the CRD cleanup (deleting a CRD deletes its
 * custom resources).
 */
import { CRD_GR, hasPendingFinalizers, type KubeCore } from './core.js';
import { ApiError } from './errors.js';
import { grKey } from './resources.js';
import type { Change } from './store.js';
import { clone, type KubeObject, type OwnerReference } from './util.js';

const FOREGROUND = 'foregroundDeletion';
const CRD_CLEANUP = 'customresourcecleanup.apiextensions.k8s.io';

export class Controllers {
  private readonly queue = new Map<string, () => void>();
  private scheduled = false;
  private idleWaiters: (() => void)[] = [];
  private stopped = false;
  private readonly unsubscribe: () => void;

  constructor(private readonly core: KubeCore) {
    this.unsubscribe = core.store.subscribe((c) => this.onChange(c));
  }

  stop() {
    this.stopped = true;
    this.unsubscribe();
    this.queue.clear();
    for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Resolves once no controller work is pending (useful in tests after a delete). */
  idle(): Promise<void> {
    if (this.queue.size === 0 && !this.scheduled) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private enqueue(key: string, fn: () => void) {
    if (this.stopped) return;
    this.queue.set(key, fn);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }

  private drain() {
    let rounds = 0;
    while (this.queue.size > 0 && rounds++ < 10_000) {
      const [key, fn] = this.queue.entries().next().value as [string, () => void];
      this.queue.delete(key);
      try {
        fn();
      } catch (e) {
        // objects vanish and conflicts happen between scheduling and running: the next change re-queues the work
        if (!(e instanceof ApiError))
          process.stderr.write(`kube-api: controller ${key} failed: ${(e as Error).stack ?? e}\n`);
      }
    }
    this.scheduled = false;
    if (this.queue.size > 0) {
      this.scheduled = true;
      setImmediate(() => this.drain());
      return;
    }
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private onChange(c: Change) {
    const o = c.object;
    const meta = o.metadata;
    if (c.type === 'DELETED') {
      if (meta.uid) this.enqueue(`gc/${meta.uid}`, () => this.collect(meta.uid!));
      for (const ref of meta.ownerReferences ?? []) {
        this.enqueue(`fg/${ref.uid}`, () => this.foregroundStep(ref.uid));
      }
      if (meta.namespace) {
        const ns = this.core.store.get('namespaces', undefined, meta.namespace);
        if (ns?.metadata.deletionTimestamp)
          this.enqueue(`ns/${meta.namespace}`, () => this.finalizeNamespace(meta.namespace!));
      }
      this.maybeCrdCleanup(c.gr);
      return;
    }
    if (meta.ownerReferences?.length && (c.type === 'ADDED' || ownerRefsChanged(c))) {
      this.enqueue(`owners/${meta.uid}`, () => this.checkOwners(c.gr, meta.namespace, meta.name!, meta.uid!));
    }
    if (meta.deletionTimestamp) {
      if (meta.finalizers?.includes(FOREGROUND)) this.enqueue(`fg/${meta.uid}`, () => this.foregroundStep(meta.uid!));
      if (c.gr === 'namespaces') this.enqueue(`ns/${meta.name}`, () => this.finalizeNamespace(meta.name!));
      if (c.gr === CRD_GR) this.enqueue(`crd/${meta.name}`, () => this.cleanupCrd(meta.name!));
    }
  }

  private maybeCrdCleanup(gr: string) {
    const rt = this.core.rtFor(gr);
    if (!rt?.crd) return;
    const crd = this.core.store.get(CRD_GR, undefined, rt.crd.name);
    if (crd?.metadata.deletionTimestamp) this.enqueue(`crd/${rt.crd.name}`, () => this.cleanupCrd(rt.crd!.name));
  }

  // ---- garbage collector ----

  /** Whether an owner reference points at an existing object the dependent may be owned by. */
  private ownerExists(dependent: KubeObject, ref: OwnerReference): KubeObject | undefined {
    const found = this.core.store.byUid(ref.uid);
    if (!found) return undefined;
    const rt = this.core.rtFor(found.gr);
    if (!rt || rt.kind !== ref.kind || found.object.metadata.name !== ref.name) return undefined;
    // a namespaced owner must be in the dependent's namespace; cluster-scoped dependents cannot have namespaced owners
    if (rt.namespaced && found.object.metadata.namespace !== dependent.metadata.namespace) return undefined;
    return found.object;
  }

  private deleteObject(gr: string, o: KubeObject, policy: 'Background' | 'Foreground') {
    const rt = this.core.rtFor(gr);
    if (!rt) return;
    if (o.metadata.deletionTimestamp && !(policy === 'Foreground' && !o.metadata.finalizers?.includes(FOREGROUND)))
      return;
    this.core.delete(rt, o.metadata.namespace, o.metadata.name!, { propagationPolicy: policy });
  }

  private dropOwnerRef(gr: string, o: KubeObject, uid: string) {
    const n = clone(o);
    n.metadata.ownerReferences = (n.metadata.ownerReferences ?? []).filter((r) => r.uid !== uid);
    if (!n.metadata.ownerReferences.length) delete n.metadata.ownerReferences;
    this.core.store.put(gr, n);
  }

  /** An owner is gone: dependents without any other live owner are deleted, the others lose the reference. */
  private collect(ownerUid: string) {
    for (const { gr, object } of this.core.dependents(ownerUid)) {
      const others = (object.metadata.ownerReferences ?? []).filter(
        (r) => r.uid !== ownerUid && this.ownerExists(object, r),
      );
      if (others.length > 0) this.dropOwnerRef(gr, object, ownerUid);
      else this.deleteObject(gr, object, 'Background');
    }
  }

  /** A new dependent whose owners all do not exist is garbage right away (as the real GC decides). */
  private checkOwners(gr: string, namespace: string | undefined, name: string, uid: string) {
    const o = this.core.store.get(gr, namespace, name);
    if (!o || o.metadata.uid !== uid || o.metadata.deletionTimestamp) return;
    const refs = o.metadata.ownerReferences ?? [];
    if (refs.length > 0 && refs.every((r) => !this.ownerExists(o, r))) this.deleteObject(gr, o, 'Background');
  }

  /** Foreground deletion: delete the dependents, then drop the owner's foregroundDeletion finalizer. */
  private foregroundStep(ownerUid: string) {
    const owner = this.core.store.byUid(ownerUid);
    if (!owner?.object.metadata.deletionTimestamp || !owner.object.metadata.finalizers?.includes(FOREGROUND)) return;
    for (const { gr, object } of this.core.dependents(ownerUid)) {
      const others = (object.metadata.ownerReferences ?? []).filter(
        (r) => r.uid !== ownerUid && this.ownerExists(object, r),
      );
      if (others.length > 0) this.dropOwnerRef(gr, object, ownerUid);
      else this.deleteObject(gr, object, 'Foreground');
    }
    const blocking = this.core
      .dependents(ownerUid)
      .filter(({ object }) => object.metadata.ownerReferences?.some((r) => r.uid === ownerUid && r.blockOwnerDeletion));
    if (blocking.length > 0) return;
    const current = this.core.store.byUid(ownerUid);
    if (!current) return;
    const n = clone(current.object);
    n.metadata.finalizers = (n.metadata.finalizers ?? []).filter((f) => f !== FOREGROUND);
    if (hasPendingFinalizers(n)) this.core.store.put(current.gr, n);
    else this.core.store.remove(current.gr, n);
  }

  // ---- namespaces ----

  private finalizeNamespace(name: string) {
    const ns = this.core.store.get('namespaces', undefined, name);
    if (!ns?.metadata.deletionTimestamp) return;
    let remaining = 0;
    for (const rt of this.core.registry.all()) {
      if (!rt.namespaced) continue;
      for (const o of this.core.store.list(grKey(rt), name)) {
        remaining++;
        if (!o.metadata.deletionTimestamp)
          this.core.delete(rt, name, o.metadata.name!, { propagationPolicy: 'Background' });
      }
    }
    if (remaining > 0) {
      let left = 0;
      for (const rt of this.core.registry.all()) if (rt.namespaced) left += this.core.store.count(grKey(rt), name);
      if (left > 0) return;
    }
    const specFinalizers = (ns.spec as { finalizers?: string[] } | undefined)?.finalizers ?? [];
    if (specFinalizers.length === 0 && hasPendingFinalizers(ns)) return;
    const n = clone(ns);
    n.spec = { ...((n.spec as object) ?? {}), finalizers: [] };
    if (hasPendingFinalizers(n)) this.core.store.put('namespaces', n);
    else this.core.store.remove('namespaces', n);
  }

  // ---- CRDs ----

  private cleanupCrd(name: string) {
    const crd = this.core.store.get(CRD_GR, undefined, name);
    if (!crd?.metadata.deletionTimestamp || !crd.metadata.finalizers?.includes(CRD_CLEANUP)) return;
    const rt = this.core.registry.all().find((t) => t.crd?.name === name);
    if (rt) {
      for (const o of this.core.store.list(grKey(rt))) {
        if (!o.metadata.deletionTimestamp) this.core.delete(rt, o.metadata.namespace, o.metadata.name!, {});
      }
      if (this.core.store.count(grKey(rt)) > 0) return;
    }
    const n = clone(crd);
    n.metadata.finalizers = (n.metadata.finalizers ?? []).filter((f) => f !== CRD_CLEANUP);
    if (hasPendingFinalizers(n)) this.core.store.put(CRD_GR, n);
    else this.core.store.remove(CRD_GR, n);
  }
}

function ownerRefsChanged(c: Change): boolean {
  const a = c.prev?.metadata.ownerReferences ?? [];
  const b = c.object.metadata.ownerReferences ?? [];
  return JSON.stringify(a) !== JSON.stringify(b);
}
