import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';

/**
 * The kubelet's Events about a pod (core/v1, source `kubelet` on the pod's node), for `kubectl describe pod`:
 * Pulled, Created, Started, Killing, BackOff, Unhealthy, Failed/FailedMount. Best effort: a failed write is dropped.
 */
export type EventReason =
  | 'Pulled'
  | 'Created'
  | 'Started'
  | 'Killing'
  | 'BackOff'
  | 'Unhealthy'
  | 'Failed'
  | 'FailedMount';

const WARNINGS = new Set<EventReason>(['BackOff', 'Unhealthy', 'Failed', 'FailedMount']);

export class PodEvents {
  private seq = 0;

  /** `core`: the client of the pod's node. */
  constructor(private readonly core: (pod: V1Pod) => CoreV1Api) {}

  emit(pod: V1Pod, reason: EventReason, message: string, container?: string): void {
    const m = pod.metadata!;
    const now = new Date();
    void this.core(pod)
      .createNamespacedEvent({
        namespace: m.namespace!,
        body: {
          metadata: {
            name: `${m.name}.${now.getTime().toString(16)}${(this.seq++).toString(16)}`,
            namespace: m.namespace,
          },
          involvedObject: {
            apiVersion: 'v1',
            kind: 'Pod',
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            ...(container ? { fieldPath: `spec.containers{${container}}` } : {}),
          },
          reason,
          message,
          type: WARNINGS.has(reason) ? 'Warning' : 'Normal',
          source: { component: 'kubelet', host: pod.spec?.nodeName },
          reportingComponent: 'kubelet',
          reportingInstance: pod.spec?.nodeName ?? '',
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      })
      .catch(() => {});
  }
}
