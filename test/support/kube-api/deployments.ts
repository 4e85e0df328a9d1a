/**
 * A minimal Deployment and ReplicaSet controller (option `deploymentController`): each Deployment gets a ReplicaSet
 * per pod template (named `<deployment>-<template hash>`, older ones scaled to 0: the Recreate strategy, whatever the
 * spec says), each ReplicaSet keeps `spec.replicas` Pods, and both report status (replicas, ready and available
 * counts from the pods' Ready condition, observedGeneration, Available/Progressing conditions). It creates and
 * deletes objects only: scheduling and running the pods is someone else's job.
 */
import { createHash } from 'node:crypto';
import type { KubeCore } from './core.js';
import { StoreReactor } from './reactor.js';
import type { Change } from './store.js';
import { clone, deepEqual, isObject, type JsonObject, type KubeObject, timestamp } from './util.js';

const obj = (v: unknown): JsonObject => (isObject(v) ? v : {});

const isReady = (pod: KubeObject) =>
  !pod.metadata.deletionTimestamp &&
  ((obj(pod.status).conditions as { type: string; status: string }[] | undefined) ?? []).some(
    (c) => c.type === 'Ready' && c.status === 'True',
  );

const ownedBy = (o: KubeObject, owner: KubeObject) =>
  (o.metadata.ownerReferences ?? []).some((r) => r.uid === owner.metadata.uid && r.controller);

const controllerRef = (owner: KubeObject, apiVersion: string, kind: string) => ({
  apiVersion,
  kind,
  name: owner.metadata.name!,
  uid: owner.metadata.uid!,
  controller: true,
  blockOwnerDeletion: true,
});

/** The pod-template-hash: a short, stable, label-safe hash of the template. */
const templateHash = (template: unknown) =>
  createHash('sha256')
    .update(JSON.stringify(template))
    .digest('hex')
    .replace(/[0-9]/g, (d) => 'bcdfghjklm'[Number(d)]!)
    .slice(0, 10);

export class DeploymentController extends StoreReactor {
  constructor(core: KubeCore) {
    super(core, 'deployment controller');
  }

  protected wants(c: Change) {
    return c.gr === 'deployments.apps' || c.gr === 'replicasets.apps' || c.gr === 'pods';
  }

  private putStatus(gr: string, o: KubeObject, status: JsonObject) {
    const current = this.core.store.get(gr, o.metadata.namespace, o.metadata.name!);
    if (!current || deepEqual(current.status, status)) return;
    const n = clone(current);
    n.status = status;
    this.core.store.put(gr, n);
  }

  sync() {
    const rsType = this.core.registry.byGR('apps', 'replicasets')!;
    const podType = this.core.registry.byGR('', 'pods')!;
    for (const d of this.core.store.list('deployments.apps')) {
      if (d.metadata.deletionTimestamp) continue;
      const spec = obj(d.spec);
      const template = obj(spec.template);
      const hash = templateHash(template);
      const replicas = typeof spec.replicas === 'number' ? spec.replicas : 1;
      const sets = this.core.store.list('replicasets.apps', d.metadata.namespace).filter((rs) => ownedBy(rs, d));
      let current = sets.find((rs) => rs.metadata.labels?.['pod-template-hash'] === hash);
      const labels = { ...(obj(template.metadata).labels as Record<string, string>), 'pod-template-hash': hash };
      if (!current) {
        current = this.core.create(rsType, 'v1', d.metadata.namespace, {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          metadata: {
            name: `${d.metadata.name}-${hash}`,
            labels,
            ownerReferences: [controllerRef(d, 'apps/v1', 'Deployment')],
          },
          spec: {
            replicas,
            selector: { matchLabels: { ...obj(obj(spec.selector).matchLabels), 'pod-template-hash': hash } },
            template: { ...template, metadata: { ...obj(template.metadata), labels } },
          },
        });
      }
      for (const rs of [current, ...sets.filter((s) => s !== current)]) {
        const want = rs === current ? replicas : 0;
        if (obj(rs.spec).replicas !== want && !rs.metadata.deletionTimestamp) {
          const n = clone(rs);
          (n.spec as JsonObject).replicas = want;
          this.core.update(rsType, 'v1', n.metadata.namespace, n.metadata.name!, n);
        }
      }
    }

    for (const rs of this.core.store.list('replicasets.apps')) {
      if (rs.metadata.deletionTimestamp) continue;
      const spec = obj(rs.spec);
      const want = typeof spec.replicas === 'number' ? spec.replicas : 1;
      const pods = this.core.store
        .list('pods', rs.metadata.namespace)
        .filter((p) => ownedBy(p, rs) && !p.metadata.deletionTimestamp);
      for (let i = pods.length; i < want; i++) {
        const template = obj(spec.template);
        this.core.create(podType, 'v1', rs.metadata.namespace, {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: {
            ...obj(template.metadata),
            // As the ReplicaSet controller does: generateName, the server picks the suffix.
            generateName: `${rs.metadata.name}-`,
            ownerReferences: [controllerRef(rs, 'apps/v1', 'ReplicaSet')],
          },
          spec: clone(template.spec ?? {}),
        });
      }
      const extra = pods
        .sort(
          (a, b) =>
            Number(isReady(a)) - Number(isReady(b)) ||
            String(b.metadata.creationTimestamp).localeCompare(String(a.metadata.creationTimestamp)),
        )
        .slice(0, Math.max(0, pods.length - want));
      for (const p of extra) this.core.delete(podType, p.metadata.namespace, p.metadata.name!);
    }

    // status, from what exists now
    for (const rs of this.core.store.list('replicasets.apps')) {
      const pods = this.core.store
        .list('pods', rs.metadata.namespace)
        .filter((p) => ownedBy(p, rs) && !p.metadata.deletionTimestamp);
      const ready = pods.filter(isReady).length;
      this.putStatus('replicasets.apps', rs, {
        replicas: pods.length,
        fullyLabeledReplicas: pods.length,
        readyReplicas: ready,
        availableReplicas: ready,
        observedGeneration: rs.metadata.generation,
      });
    }
    for (const d of this.core.store.list('deployments.apps')) {
      const spec = obj(d.spec);
      const replicas = typeof spec.replicas === 'number' ? spec.replicas : 1;
      const hash = templateHash(obj(spec.template));
      const sets = this.core.store.list('replicasets.apps', d.metadata.namespace).filter((rs) => ownedBy(rs, d));
      const count = (key: string, only?: KubeObject) =>
        sets.filter((s) => !only || s === only).reduce((n, s) => n + Number(obj(s.status)[key] ?? 0), 0);
      const current = sets.find((rs) => rs.metadata.labels?.['pod-template-hash'] === hash);
      const available = count('availableReplicas');
      const total = count('replicas');
      const updated = current ? count('replicas', current) : 0;
      const previous = (obj(d.status).conditions as JsonObject[] | undefined) ?? [];
      const condition = (type: string, ok: boolean, reason: string, message: string) => {
        const before = previous.find((c) => c.type === type);
        const status = ok ? 'True' : 'False';
        const now = timestamp();
        return {
          type,
          status,
          lastUpdateTime: before?.status === status && before.reason === reason ? before.lastUpdateTime : now,
          lastTransitionTime: before?.status === status ? before.lastTransitionTime : now,
          reason,
          message,
        };
      };
      const isAvailable = available >= replicas;
      const status: JsonObject = {
        observedGeneration: d.metadata.generation,
        replicas: total,
        updatedReplicas: updated,
        readyReplicas: count('readyReplicas'),
        availableReplicas: available,
        ...(total - available > 0 ? { unavailableReplicas: total - available } : {}),
        conditions: [
          condition(
            'Available',
            isAvailable,
            isAvailable ? 'MinimumReplicasAvailable' : 'MinimumReplicasUnavailable',
            isAvailable ? 'Deployment has minimum availability.' : 'Deployment does not have minimum availability.',
          ),
          condition(
            'Progressing',
            true,
            updated === replicas && isAvailable ? 'NewReplicaSetAvailable' : 'ReplicaSetUpdated',
            current
              ? `ReplicaSet "${current.metadata.name}" ${updated === replicas && isAvailable ? 'has successfully progressed.' : 'is progressing.'}`
              : 'Deployment is progressing.',
          ),
        ],
      };
      for (const k of ['replicas', 'updatedReplicas', 'readyReplicas', 'availableReplicas'])
        if (status[k] === 0) delete status[k];
      this.putStatus('deployments.apps', d, status);
    }
  }
}
