import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type Informer,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  makeInformer,
  type ObjectCache,
  type V1Deployment,
  type V1Pod,
  type V1Secret,
  type V1Service,
} from '@kubernetes/client-node';
import {
  FEDERATIONS,
  type Federation,
  type FederationRound,
  GROUP,
  LABELS,
  MANAGER,
  ROUNDS,
  VERSION,
} from './types.js';

/** The Kubernetes API errors a reconciler reacts to. */
export const statusCode = (e: unknown): number | undefined =>
  typeof e === 'object' && e !== null && 'code' in e && typeof (e as { code: unknown }).code === 'number'
    ? (e as { code: number }).code
    : undefined;
export const isNotFound = (e: unknown) => statusCode(e) === 404;
export const isConflict = (e: unknown) => statusCode(e) === 409;

export type Kind = 'Federation' | 'FederationRound' | 'Pod' | 'Deployment' | 'Service';

/**
 * What the reconcilers need from Kubernetes: reads from informer caches (no API traffic), writes through the API.
 * An interface so that reconciler unit tests can use an in-memory fake.
 */
export interface Kube {
  federation(namespace: string, name: string): Federation | undefined;
  rounds(namespace: string): FederationRound[];
  round(namespace: string, name: string): FederationRound | undefined;
  pods(namespace: string, labels: Record<string, string>): V1Pod[];
  deployment(namespace: string, name: string): V1Deployment | undefined;
  service(namespace: string, name: string): V1Service | undefined;
  create(o: KubernetesObject): Promise<void>;
  /** PUT with the object's resourceVersion: 409 when stale. */
  replace(o: KubernetesObject): Promise<void>;
  delete(o: KubernetesObject): Promise<void>;
  /** PUT to the status subresource. */
  replaceStatus(o: Federation | FederationRound): Promise<void>;
  /** Whether a Secret exists (read through the API: Secrets are not cached, to keep their contents out of memory). */
  secretExists(namespace: string, name: string): Promise<boolean>;
  /** A Secret, read through the API (undefined when absent). */
  readSecret(namespace: string, name: string): Promise<V1Secret | undefined>;
  /** Secrets with these labels in a namespace ('' = every namespace), read through the API. */
  listSecrets(namespace: string, labels: Record<string, string>): Promise<V1Secret[]>;
}

export interface KubeCaches {
  federations: Informer<Federation> & ObjectCache<Federation>;
  rounds: Informer<FederationRound> & ObjectCache<FederationRound>;
  pods: Informer<V1Pod> & ObjectCache<V1Pod>;
  deployments: Informer<V1Deployment> & ObjectCache<V1Deployment>;
  services: Informer<V1Service> & ObjectCache<V1Service>;
}

const matches = (have: Record<string, string> | undefined, want: Record<string, string>) =>
  Object.entries(want).every(([k, v]) => have?.[k] === v);

/** The real thing: client-node informers (list + watch, relist on 410) and the generic object API. */
export class ClusterKube implements Kube {
  readonly caches: KubeCaches;
  private readonly objects: KubernetesObjectApi;
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  /** API requests made by writes (reads come from the caches), for metrics and the benchmark. */
  requests = 0;

  constructor(
    kc: KubeConfig,
    /** '' watches every namespace. */
    watchNamespace = '',
    private readonly onRequest: (verb: string) => void = () => {},
  ) {
    this.objects = KubernetesObjectApi.makeApiClient(kc);
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    const core = kc.makeApiClient(CoreV1Api);
    const apps = kc.makeApiClient(AppsV1Api);
    const ns = watchNamespace;
    const managed = `${LABELS.managedBy}=${MANAGER}`;
    const crPath = (plural: string) =>
      ns ? `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${plural}` : `/apis/${GROUP}/${VERSION}/${plural}`;
    const listCr = (plural: string) => () =>
      (ns
        ? this.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural })
        : this.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural })) as never;
    this.caches = {
      federations: makeInformer<Federation>(kc, crPath(FEDERATIONS), listCr(FEDERATIONS)),
      rounds: makeInformer<FederationRound>(kc, crPath(ROUNDS), listCr(ROUNDS)),
      pods: makeInformer<V1Pod>(
        kc,
        ns ? `/api/v1/namespaces/${ns}/pods` : '/api/v1/pods',
        () =>
          (ns
            ? core.listNamespacedPod({ namespace: ns, labelSelector: managed })
            : core.listPodForAllNamespaces({ labelSelector: managed })) as never,
        managed,
      ),
      deployments: makeInformer<V1Deployment>(
        kc,
        ns ? `/apis/apps/v1/namespaces/${ns}/deployments` : '/apis/apps/v1/deployments',
        () =>
          (ns
            ? apps.listNamespacedDeployment({ namespace: ns, labelSelector: managed })
            : apps.listDeploymentForAllNamespaces({ labelSelector: managed })) as never,
        managed,
      ),
      services: makeInformer<V1Service>(
        kc,
        ns ? `/api/v1/namespaces/${ns}/services` : '/api/v1/services',
        () =>
          (ns
            ? core.listNamespacedService({ namespace: ns, labelSelector: managed })
            : core.listServiceForAllNamespaces({ labelSelector: managed })) as never,
        managed,
      ),
    };
  }

  federation(namespace: string, name: string) {
    return this.caches.federations.get(name, namespace);
  }
  rounds(namespace: string) {
    return [...this.caches.rounds.list(namespace)];
  }
  round(namespace: string, name: string) {
    return this.caches.rounds.get(name, namespace);
  }
  pods(namespace: string, labels: Record<string, string>) {
    return [...this.caches.pods.list(namespace)].filter((p) => matches(p.metadata?.labels, labels));
  }
  deployment(namespace: string, name: string) {
    return this.caches.deployments.get(name, namespace);
  }
  service(namespace: string, name: string) {
    return this.caches.services.get(name, namespace);
  }

  private count(verb: string) {
    this.requests++;
    this.onRequest(verb);
  }

  async create(o: KubernetesObject) {
    this.count('create');
    await this.objects.create(o);
  }
  async replace(o: KubernetesObject) {
    this.count('update');
    await this.objects.replace(o);
  }
  async delete(o: KubernetesObject) {
    this.count('delete');
    try {
      await this.objects.delete(o, undefined, undefined, undefined, undefined, 'Background');
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
  async secretExists(namespace: string, name: string) {
    this.count('get-secret');
    try {
      await this.core.readNamespacedSecret({ name, namespace });
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  async readSecret(namespace: string, name: string) {
    this.count('get-secret');
    try {
      return await this.core.readNamespacedSecret({ name, namespace });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async listSecrets(namespace: string, labels: Record<string, string>) {
    this.count('list-secrets');
    const labelSelector = Object.entries(labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const list = namespace
      ? await this.core.listNamespacedSecret({ namespace, labelSelector })
      : await this.core.listSecretForAllNamespaces({ labelSelector });
    return list.items.map((s) => ({ ...s, apiVersion: 'v1', kind: 'Secret' }));
  }

  async replaceStatus(o: Federation | FederationRound) {
    this.count('update-status');
    await this.custom.replaceNamespacedCustomObjectStatus({
      group: GROUP,
      version: VERSION,
      namespace: o.metadata.namespace!,
      plural: o.kind === 'Federation' ? FEDERATIONS : ROUNDS,
      name: o.metadata.name!,
      body: o,
    });
  }
}
