import type { Logger } from '@fednano/service-kit';
import { CoreV1Api, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';

export type EventType = 'Normal' | 'Warning';

/** Kubernetes Events: what a person should see in `kubectl describe`. */
export interface Recorder {
  event(o: KubernetesObject, type: EventType, reason: string, message: string): void;
}

/** Writes core/v1 Events; failures are logged, never fatal (events are best effort, as in client-go). */
export class ApiRecorder implements Recorder {
  private readonly core: CoreV1Api;
  private seq = 0;

  constructor(
    kc: KubeConfig,
    private readonly log: Logger,
    private readonly component = 'fednano-operator',
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
  }

  event(o: KubernetesObject, type: EventType, reason: string, message: string): void {
    const now = new Date();
    const namespace = o.metadata?.namespace ?? 'default';
    this.core
      .createNamespacedEvent({
        namespace,
        body: {
          metadata: {
            name: `${o.metadata?.name}.${now.getTime().toString(16)}${(this.seq++).toString(16)}`,
            namespace,
          },
          involvedObject: {
            apiVersion: o.apiVersion,
            kind: o.kind,
            name: o.metadata?.name,
            namespace,
            uid: o.metadata?.uid,
            resourceVersion: o.metadata?.resourceVersion,
          },
          type,
          reason,
          message,
          source: { component: this.component },
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
          reportingComponent: this.component,
        },
      })
      .catch((e: Error) => this.log.warn({ err: e.message, reason }, 'could not record event'));
  }
}
