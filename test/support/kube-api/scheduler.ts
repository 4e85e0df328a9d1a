/**
 * A trivial scheduler (option `schedulePods`): binds each pending pod without spec.nodeName to the first Ready,
 * schedulable node (by name) whose labels match the pod's spec.nodeSelector; otherwise leaves it Pending with a
 * PodScheduled=False condition, as kube-scheduler reports it. No resources, taints, affinity or spreading.
 */
import type { KubeCore } from './core.js';
import { StoreReactor } from './reactor.js';
import type { Change } from './store.js';
import { clone, isObject, type JsonObject, type KubeObject, timestamp } from './util.js';

const isReady = (node: KubeObject) => {
  const conditions = (node.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [];
  return conditions.some((c) => c.type === 'Ready' && c.status === 'True');
};

function setCondition(pod: KubeObject, condition: JsonObject): boolean {
  const status = (isObject(pod.status) ? pod.status : {}) as JsonObject;
  pod.status = status;
  const conditions = (Array.isArray(status.conditions) ? status.conditions : []) as JsonObject[];
  const i = conditions.findIndex((c) => c.type === condition.type);
  const prev = i >= 0 ? conditions[i] : undefined;
  if (
    prev &&
    prev.status === condition.status &&
    prev.reason === condition.reason &&
    prev.message === condition.message
  )
    return false;
  const next = {
    ...condition,
    lastProbeTime: null,
    lastTransitionTime: prev?.status === condition.status ? prev?.lastTransitionTime : timestamp(),
  };
  if (i >= 0) conditions[i] = next;
  else conditions.push(next);
  status.conditions = conditions;
  return true;
}

export class Scheduler extends StoreReactor {
  constructor(core: KubeCore) {
    super(core, 'scheduler');
  }

  protected wants(c: Change) {
    if (c.type === 'DELETED') return false;
    return c.gr === 'nodes' || (c.gr === 'pods' && !(c.object.spec as JsonObject | undefined)?.nodeName);
  }

  sync() {
    this.scheduleAll();
  }

  scheduleAll() {
    const nodes = this.core.store.list('nodes');
    for (const pod of this.core.store.list('pods')) {
      const spec = (pod.spec ?? {}) as JsonObject;
      const phase = (pod.status as JsonObject | undefined)?.phase;
      if (spec.nodeName || pod.metadata.deletionTimestamp || (phase && phase !== 'Pending')) continue;
      if (spec.schedulerName && spec.schedulerName !== 'default-scheduler') continue;
      const selector = (isObject(spec.nodeSelector) ? spec.nodeSelector : {}) as Record<string, string>;
      const ready = nodes.filter((n) => isReady(n) && !(n.spec as JsonObject | undefined)?.unschedulable);
      const fit = ready.find((n) => Object.entries(selector).every(([k, v]) => n.metadata.labels?.[k] === v));
      const next = clone(pod);
      let changed: boolean;
      if (fit) {
        (next.spec as JsonObject).nodeName = fit.metadata.name;
        setCondition(next, { type: 'PodScheduled', status: 'True' });
        changed = true;
      } else {
        // Each node counts under the first check it fails, selector before readiness, as kube-scheduler (v1.36)
        // reports it; none of these is helped by preemption.
        const matches = (n: KubeObject) => Object.entries(selector).every(([k, v]) => n.metadata.labels?.[k] === v);
        const mismatch = nodes.filter((n) => !matches(n)).length;
        const notReady = nodes.length - mismatch;
        const reasons = [
          ...(mismatch ? [`${mismatch} node(s) didn't match Pod's node affinity/selector`] : []),
          ...(notReady ? [`${notReady} node(s) had untolerated taint {node.kubernetes.io/not-ready: }`] : []),
        ];
        const n = nodes.length;
        changed = setCondition(next, {
          type: 'PodScheduled',
          status: 'False',
          reason: 'Unschedulable',
          message: n
            ? `0/${n} nodes are available: ${reasons.join(', ')}. no new claims to deallocate, preemption: 0/${n} nodes are available: ${n} Preemption is not helpful for scheduling.`
            : 'no nodes available to schedule pods',
        });
      }
      if (changed) this.core.store.put('pods', next);
    }
  }
}
