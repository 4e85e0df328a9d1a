import { arch, cpus, hostname, release, totalmem } from 'node:os';
import { microTime } from '@fednano/operator';
import {
  CoordinationV1Api,
  CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Node,
  type V1NodeCondition,
  type V1Taint,
  VersionApi,
} from '@kubernetes/client-node';
import { isConflict, isNotFound } from './errors.js';

/**
 * The node half of a kubelet: registers each Node (labels, taints), reports its status through the nodes/status
 * subresource (capacity, allocatable, conditions, addresses, nodeInfo) and keeps it alive the two ways
 * kube-controller-manager's node-lifecycle controller watches: a Lease per node in kube-node-lease renewed every
 * `renewSeconds`, and a status heartbeat (lastHeartbeatTime) at least every `statusSeconds`.
 */
export interface NodeSpec {
  name: string;
  labels: Record<string, string>;
  /** Registered with the Node (spec.taints), e.g. the GPU node's `nvidia.com/gpu=present:NoSchedule`. */
  taints?: V1Taint[];
  /** Extra or overriding capacity (also allocatable), e.g. `{ 'nvidia.com/gpu': '1' }`. */
  capacity?: Record<string, string>;
}

export interface NodeAgentOptions {
  /** How the kubelet runs containers, for nodeInfo.containerRuntimeVersion (e.g. `process://node-v20.20.2`). */
  runtimeVersion: string;
  /** The address pods and nodes are reached at (status.addresses InternalIP). */
  address: string;
  /** The port of the kubelet's HTTPS server (status.daemonEndpoints), for `kubectl logs`. */
  kubeletPort?: number;
  /** Lease renewal period (the real kubelet: 10 s; leaseDurationSeconds is 4x). */
  renewSeconds?: number;
  /** Status heartbeat period (the real kubelet reports at least every 5 min without changes; shorter here). */
  statusSeconds?: number;
}

export const LEASE_NAMESPACE = 'kube-node-lease';

const GOARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' };

/** What every node has: labels the real kubelet sets itself, and this machine's resources. */
export function nodeObject(n: NodeSpec): V1Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: n.name,
      labels: {
        'kubernetes.io/hostname': n.name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': GOARCH[arch()] ?? arch(),
        'beta.kubernetes.io/os': 'linux',
        'beta.kubernetes.io/arch': GOARCH[arch()] ?? arch(),
        ...n.labels,
      },
    },
    spec: n.taints?.length ? { taints: n.taints } : {},
  };
}

export function nodeCapacity(n: NodeSpec): Record<string, string> {
  return {
    cpu: String(cpus().length),
    memory: `${Math.floor(totalmem() / 1024)}Ki`,
    pods: '110',
    'ephemeral-storage': '100Gi',
    ...n.capacity,
  };
}

/** The node's status: Ready with no pressure, heartbeat now, transitions at `since`. */
export function nodeStatus(
  n: NodeSpec,
  o: { address: string; kubeletVersion: string; runtimeVersion: string; since: Date; now: Date },
): NonNullable<V1Node['status']> {
  const condition = (type: string, status: string, reason: string, message: string): V1NodeCondition => ({
    type,
    status,
    reason,
    message,
    lastHeartbeatTime: o.now,
    lastTransitionTime: o.since,
  });
  const capacity = nodeCapacity(n);
  return {
    capacity,
    allocatable: capacity,
    conditions: [
      condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
      condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
      condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
      condition('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
    ],
    addresses: [
      { type: 'InternalIP', address: o.address },
      { type: 'Hostname', address: n.name },
    ],
    nodeInfo: {
      machineID: n.name,
      systemUUID: n.name,
      bootID: `${hostname()}-${process.pid}`,
      kernelVersion: release(),
      osImage: 'fednano process kubelet',
      containerRuntimeVersion: o.runtimeVersion,
      kubeletVersion: o.kubeletVersion,
      kubeProxyVersion: o.kubeletVersion,
      operatingSystem: 'linux',
      architecture: GOARCH[arch()] ?? arch(),
    },
  };
}

const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export class NodeAgent {
  private readonly core: CoreV1Api;
  private readonly leases: CoordinationV1Api;
  private readonly version: VersionApi;
  private readonly since = new Date();
  private readonly uids = new Map<string, string>();
  private kubeletVersion = 'v1.36.0';
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  /** The last error of a heartbeat or lease renewal, for failure messages. */
  lastError?: string;

  constructor(
    kc: KubeConfig,
    readonly nodes: readonly NodeSpec[],
    private readonly o: NodeAgentOptions,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.leases = kc.makeApiClient(CoordinationV1Api);
    this.version = kc.makeApiClient(VersionApi);
  }

  async start(): Promise<void> {
    // The kubelet's version is the cluster's (what the apiserver reports), so version-skew checks see a match.
    this.kubeletVersion = await this.version
      .getCode()
      .then((v) => v.gitVersion.replace(/[-+].*$/, ''))
      .catch(() => this.kubeletVersion);
    for (const n of this.nodes) {
      await this.register(n);
      await this.reportStatus(n);
      await this.renewLease(n);
    }
    const every = (s: number, f: (n: NodeSpec) => Promise<void>) =>
      setInterval(() => {
        for (const n of this.nodes)
          f(n).catch((e) => {
            this.lastError = `${n.name}: ${(e as Error).message}`;
          });
      }, s * 1000);
    this.timers = [
      every(this.o.renewSeconds ?? 10, (n) => this.renewLease(n)),
      every(this.o.statusSeconds ?? 10, (n) => this.reportStatus(n)),
    ];
  }

  /** Creates the Node, or brings an existing one's labels and taints to the spec (a kubelet re-registering). */
  private async register(n: NodeSpec): Promise<void> {
    const want = nodeObject(n);
    let node: V1Node;
    try {
      // With its status, as the kubelet registers: node-lifecycle sees it Ready from the start (no not-ready taint).
      node = await this.core.createNode({ body: { ...want, status: this.status(n) } });
    } catch (e) {
      if (!isConflict(e)) throw e;
      const current = await this.core.readNode({ name: n.name });
      // Taints others manage (node-lifecycle's not-ready/unreachable, a cordon) stay; ours are set as specified.
      const theirs = (current.spec?.taints ?? []).filter((t) => !n.taints?.some((x) => x.key === t.key));
      const taints = [...theirs, ...(n.taints ?? [])];
      node = await this.core.patchNode(
        { name: n.name, body: { metadata: { labels: want.metadata!.labels }, spec: { taints } } },
        merge,
      );
    }
    this.uids.set(n.name, node.metadata!.uid!);
  }

  private status(n: NodeSpec): NonNullable<V1Node['status']> {
    return nodeStatus(n, {
      address: this.o.address,
      kubeletVersion: this.kubeletVersion,
      runtimeVersion: this.o.runtimeVersion,
      since: this.since,
      now: new Date(),
    });
  }

  private async reportStatus(n: NodeSpec): Promise<void> {
    if (this.stopped) return;
    // The patch body is sent as it is: DaemonEndpoint's JSON key is `Port`.
    const status = {
      ...this.status(n),
      ...(this.o.kubeletPort ? { daemonEndpoints: { kubeletEndpoint: { Port: this.o.kubeletPort } } } : {}),
    };
    try {
      await this.core.patchNodeStatus({ name: n.name, body: { status } }, merge);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      // Deleted from under us (e.g. `kubectl delete node`): a kubelet registers again.
      await this.register(n);
      await this.core.patchNodeStatus({ name: n.name, body: { status } }, merge);
    }
  }

  private async renewLease(n: NodeSpec): Promise<void> {
    if (this.stopped) return;
    const spec = {
      holderIdentity: n.name,
      leaseDurationSeconds: 4 * (this.o.renewSeconds ?? 10),
      // MicroTime: six fractional digits, or kube-apiserver answers 400 (client-node would send three).
      renewTime: microTime(new Date()) as never,
    };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const lease = await this.leases.readNamespacedLease({ namespace: LEASE_NAMESPACE, name: n.name });
        await this.leases.replaceNamespacedLease({
          namespace: LEASE_NAMESPACE,
          name: n.name,
          body: { ...lease, spec: { ...lease.spec, ...spec } },
        });
        return;
      } catch (e) {
        if (isConflict(e)) continue;
        if (!isNotFound(e)) throw e;
      }
      try {
        await this.leases.createNamespacedLease({
          namespace: LEASE_NAMESPACE,
          body: {
            metadata: {
              name: n.name,
              namespace: LEASE_NAMESPACE,
              ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: n.name, uid: this.uids.get(n.name)! }],
            },
            spec,
          },
        });
        return;
      } catch (e) {
        if (!isConflict(e)) throw e;
      }
    }
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
  }
}
