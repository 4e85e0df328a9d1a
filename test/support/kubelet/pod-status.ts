import type { V1ContainerState, V1ContainerStatus, V1PodCondition, V1PodStatus } from '@kubernetes/client-node';

/**
 * A pod's status as the kubelet reports it through the pods/status subresource, from what it knows of its one
 * container: phase, the four conditions (transition times kept across reports), host and pod IPs, start time and
 * the container status (ids, ready, started, restarts, state and lastState).
 */
export interface ContainerView {
  name: string;
  image: string;
  imageID: string;
  containerID: string;
  ready: boolean;
  started: boolean;
  restartCount: number;
  state: V1ContainerState;
  lastState?: V1ContainerState;
}

export interface PodView {
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed';
  reason?: string;
  message?: string;
  hostIP: string;
  podIP?: string;
  startTime?: Date;
  /** Whether volumes and init are done (Initialized). */
  initialized: boolean;
  container: ContainerView;
}

/** Remembers when each condition last changed, so a report only moves lastTransitionTime when the status flips. */
export class ConditionClock {
  private readonly seen = new Map<string, { status: string; at: Date }>();

  condition(type: string, ok: boolean, reason?: string): V1PodCondition {
    const status = ok ? 'True' : 'False';
    let s = this.seen.get(type);
    if (s?.status !== status) {
      s = { status, at: new Date() };
      this.seen.set(type, s);
    }
    return { type, status, lastTransitionTime: s.at, ...(reason && !ok ? { reason } : {}) };
  }
}

export function podStatus(v: PodView, clock: ConditionClock): V1PodStatus {
  const c = v.container;
  const terminal = v.phase === 'Succeeded' || v.phase === 'Failed';
  const notReady = terminal ? 'PodCompleted' : 'ContainersNotReady';
  const status: V1PodStatus = {
    phase: v.phase,
    conditions: [
      clock.condition('PodScheduled', true),
      clock.condition('Initialized', v.initialized || terminal),
      clock.condition('ContainersReady', c.ready, notReady),
      clock.condition('Ready', c.ready, notReady),
    ],
    hostIP: v.hostIP,
    hostIPs: [{ ip: v.hostIP }],
    ...(v.podIP ? { podIP: v.podIP, podIPs: [{ ip: v.podIP }] } : {}),
    ...(v.startTime ? { startTime: v.startTime } : {}),
    ...(v.reason ? { reason: v.reason } : {}),
    ...(v.message ? { message: v.message } : {}),
    containerStatuses: [containerStatus(c)],
  };
  return status;
}

function containerStatus(c: ContainerView): V1ContainerStatus {
  return {
    name: c.name,
    image: c.image,
    imageID: c.imageID,
    ...(c.containerID ? { containerID: c.containerID } : {}),
    ready: c.ready,
    started: c.started,
    restartCount: c.restartCount,
    state: c.state,
    // Merge patch replaces the object: an empty lastState clears one from an earlier report.
    lastState: c.lastState ?? {},
  };
}
