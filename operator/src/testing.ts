import type { FederationRef, RoundDocument, RoundSpec } from '@fednano/wire';
import type { KubernetesObject, V1Deployment, V1Pod, V1Secret, V1Service } from '@kubernetes/client-node';
import type { EventType, Recorder } from './events.js';
import type { Kube } from './kube.js';
import type { RoundStore } from './round-store.js';
import type { Federation, FederationRound } from './types.js';

/** In-memory fakes of the operator's ports, for reconciler unit tests. */
export class FakeKube implements Kube {
  readonly objects = new Map<string, KubernetesObject>();
  readonly calls: string[] = [];
  private rv = 1;

  private key(o: KubernetesObject) {
    return `${o.kind}/${o.metadata?.namespace}/${o.metadata?.name}`;
  }
  private get<T>(kind: string, ns: string, name: string) {
    return this.objects.get(`${kind}/${ns}/${name}`) as T | undefined;
  }
  private all<T extends KubernetesObject>(kind: string, ns: string): T[] {
    return [...this.objects.values()].filter((o) => o.kind === kind && o.metadata?.namespace === ns) as T[];
  }
  /** Puts an object as if a user applied it (uid, generation, resourceVersion). */
  put<T extends KubernetesObject>(o: T): T {
    const c = structuredClone(o);
    c.metadata = {
      uid: `uid-${c.metadata?.name}`,
      generation: 1,
      creationTimestamp: new Date(1_000_000 + this.rv) as never,
      ...c.metadata,
      resourceVersion: String(this.rv++),
    };
    this.objects.set(this.key(c), c);
    return c;
  }

  federation(ns: string, name: string) {
    return this.get<Federation>('Federation', ns, name);
  }
  rounds(ns: string) {
    return this.all<FederationRound>('FederationRound', ns);
  }
  round(ns: string, name: string) {
    return this.get<FederationRound>('FederationRound', ns, name);
  }
  pods(ns: string, labels: Record<string, string>) {
    return this.all<V1Pod>('Pod', ns).filter((p) =>
      Object.entries(labels).every(([k, v]) => p.metadata?.labels?.[k] === v),
    );
  }
  deployment(ns: string, name: string) {
    return this.get<V1Deployment>('Deployment', ns, name);
  }
  service(ns: string, name: string) {
    return this.get<V1Service>('Service', ns, name);
  }
  async create(o: KubernetesObject) {
    this.calls.push(`create ${this.key(o)}`);
    if (this.objects.has(this.key(o))) throw Object.assign(new Error('exists'), { code: 409 });
    this.put(o);
  }
  private checkVersion(o: KubernetesObject) {
    const have = this.objects.get(this.key(o));
    if (!have) throw Object.assign(new Error('not found'), { code: 404 });
    if (o.metadata?.resourceVersion && o.metadata.resourceVersion !== have.metadata?.resourceVersion)
      throw Object.assign(new Error('conflict'), { code: 409 });
    return have;
  }
  async replace(o: KubernetesObject) {
    this.calls.push(`replace ${this.key(o)}`);
    const have = this.checkVersion(o);
    this.objects.set(this.key(o), {
      ...structuredClone(o),
      metadata: { ...o.metadata, resourceVersion: String(this.rv++) },
      ...('status' in have ? { status: (have as { status: unknown }).status } : {}),
    } as KubernetesObject);
  }
  async delete(o: KubernetesObject) {
    this.calls.push(`delete ${this.key(o)}`);
    this.objects.delete(this.key(o));
  }
  async replaceStatus(o: Federation | FederationRound) {
    this.calls.push(`status ${this.key(o)}`);
    const have = this.checkVersion(o) as Federation | FederationRound;
    this.objects.set(this.key(o), {
      ...have,
      status: structuredClone(o.status),
      metadata: { ...have.metadata, resourceVersion: String(this.rv++) },
    } as never);
  }
  readonly secrets = new Set<string>();
  async secretExists(ns: string, name: string) {
    return this.secrets.has(`${ns}/${name}`) || this.objects.has(`Secret/${ns}/${name}`);
  }
  async readSecret(ns: string, name: string) {
    return structuredClone(this.get<V1Secret>('Secret', ns, name));
  }
  async listSecrets(ns: string, labels: Record<string, string>) {
    return [...this.objects.values()]
      .filter((o) => o.kind === 'Secret' && (!ns || o.metadata?.namespace === ns))
      .filter((o) => Object.entries(labels).every(([k, v]) => o.metadata?.labels?.[k] === v))
      .map((o) => structuredClone(o) as V1Secret);
  }
  /** Marks a Deployment available, as its controller would. */
  setAvailable(ns: string, name: string) {
    const d = this.deployment(ns, name)!;
    d.status = { availableReplicas: 1, readyReplicas: 1, replicas: 1 };
  }
  setPodPhase(ns: string, name: string, phase: string) {
    const p = this.get<V1Pod>('Pod', ns, name)!;
    p.status = { phase };
  }
  clearCalls() {
    this.calls.length = 0;
  }
}

export class FakeStore implements RoundStore {
  readonly docs = new Map<string, RoundDocument>();
  readonly forgotten: string[] = [];
  private k(f: FederationRef, n: number) {
    return `${f.namespace}.${f.federation}.${n}`;
  }
  async read(f: FederationRef, n: number) {
    return structuredClone(this.docs.get(this.k(f, n)));
  }
  async open(spec: RoundSpec) {
    if (this.docs.has(this.k(spec, spec.round))) return;
    this.docs.set(this.k(spec, spec.round), {
      spec,
      status: { state: 'Open', accepted: [], rejected: [], duplicates: 0, updatedAt: '' },
    });
  }
  async forgetRound(f: FederationRef, n: number) {
    this.forgotten.push(this.k(f, n));
    this.docs.delete(this.k(f, n));
  }
  async forgetFederation(f: FederationRef) {
    this.forgotten.push(`${f.namespace}.${f.federation}.*`);
  }
  /** Round 0, as the aggregator writes it. */
  initial(f: FederationRef, dModel = 128) {
    this.docs.set(this.k(f, 0), {
      spec: { ...f, round: 0, dModel } as RoundSpec,
      status: {
        state: 'Aggregated',
        accepted: [],
        rejected: [],
        duplicates: 0,
        updatedAt: '',
        result: { object: `${f.namespace}/${f.federation}/round-0`, sha256: 'a'.repeat(64) },
      },
    });
  }
  doc(f: FederationRef, n: number) {
    return this.docs.get(this.k(f, n))!;
  }
}

export class FakeRecorder implements Recorder {
  readonly events: { name: string; type: EventType; reason: string; message: string }[] = [];
  event(o: KubernetesObject, type: EventType, reason: string, message: string) {
    this.events.push({ name: o.metadata!.name!, type, reason, message });
  }
}
