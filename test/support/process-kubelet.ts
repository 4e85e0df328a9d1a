import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, httpStatus } from '@fednano/service-kit';
import {
  CoreV1Api,
  type Informer,
  type KubeConfig,
  ListWatch,
  makeInformer,
  type ObjectCache,
  PatchStrategy,
  setHeaderOptions,
  type V1ContainerState,
  type V1Pod,
  type V1Probe,
  type V1Service,
  Watch,
} from '@kubernetes/client-node';
import { DockerRuntime, type DockerRuntimeOptions } from './kubelet/docker-runtime.js';
import { containerEnv, expand } from './kubelet/env.js';
import { isNotFound } from './kubelet/errors.js';
import { PodEvents } from './kubelet/events.js';
import { nodeKubeConfig } from './kubelet/identity.js';
import { NodeAgent, type NodeSpec } from './kubelet/nodes.js';
import { ConditionClock, type PodView, podStatus } from './kubelet/pod-status.js';
import { type Backend, ServiceProxies } from './kubelet/proxy.js';
import {
  type ContainerHandle,
  type ContainerLaunch,
  type ContainerRuntime,
  ProcessRuntime,
} from './kubelet/runtime.js';
import { KubeletServer } from './kubelet/server.js';
import { PodVolumes } from './kubelet/volumes.js';

/**
 * The project's kubelet and kube-proxy, for the emulated API server (test/support/kube-api) and a real control plane
 * (test/support/control-plane.ts) alike.
 * - Nodes (kubelet/nodes.ts): registered with labels, taints and capacity; status through nodes/status; kept alive by
 *   a Lease per node in kube-node-lease and a status heartbeat, so node-lifecycle keeps them Ready.
 * - Pods bound to its nodes: the first container runs as a local process of the service its image names
 *   (`runtime: 'process'`, the default) or as a Docker Engine container (`runtime: 'docker'`), each container port
 *   on a free host port; volumes (hostPath, emptyDir, secret, configMap, downwardAPI, projected with the
 *   ServiceAccount token from the TokenRequest API) as host folders kept in sync; env with valueFrom; startup,
 *   readiness and liveness probes (httpGet, tcpSocket); restarts per restartPolicy with back-off; status through
 *   pods/status (phase, conditions, IPs, container status); graceful deletion (SIGTERM, SIGKILL after the grace
 *   period, then the final delete with gracePeriodSeconds 0 and the pod's uid as precondition).
 * - A process pod that mounts a ServiceAccount token gets KUBECONFIG: the kubelet's API server, the cluster CA and
 *   the pod's own (renewed) token, so a `loadFromDefault()` client inside runs with that account's RBAC.
 * - `kubectl logs` (kubelet/server.ts): the API server proxies pods/log to the kubelet's HTTPS server (it must
 *   prefer the InternalIP: kube-apiserver --kubelet-preferred-address-types=InternalIP).
 * - kube-proxy (kubelet/proxy.ts): each Service port gets a stable local port forwarding to a Ready backend, and
 *   `<service>.<namespace>.svc[.cluster.local]:<port>` in a container's args and env resolves to it.
 * Identity: by default the KubeConfig it is given (the suites pass an admin, system:masters client); with
 * `identity: 'node'` each node's own `system:node:<name>` certificate from the CSR API (kubelet/identity.ts).
 */
export interface ProcessKubeletOptions {
  nodes: NodeSpec[];
  /** Image name (without tag) -> the service entry script to run (process runtime). */
  images: Record<string, string>;
  /** Extra environment for every process. */
  env?: NodeJS.ProcessEnv;
  /** Each line a container writes. */
  onLog?: (pod: string, line: string) => void;
  /**
   * Rewrites a container's arguments (after ports and Service names are resolved) before it starts: the fault tests
   * route one pod's NATS connection through a misbehaving proxy this way.
   */
  rewriteArgs?: (pod: V1Pod, args: string[]) => string[];
  /** How containers run (default 'process'). */
  runtime?: 'process' | 'docker';
  docker?: DockerRuntimeOptions;
  /**
   * Who the kubelet is to the API server: 'kubeconfig' (default) uses the KubeConfig it is given for everything (the
   * suites pass an admin one); 'node' bootstraps a `system:node:<name>` client certificate per node through the
   * CSR API (the given KubeConfig approves it; kube-controller-manager signs it) and acts as each node with it, so
   * the Node authorizer and NodeRestriction apply as to a real kubelet.
   */
  identity?: 'kubeconfig' | 'node';
}

export type { NodeSpec } from './kubelet/nodes.js';

/** One pod this kubelet runs. */
interface PodRecord {
  pod: V1Pod;
  dir: string;
  volumes: PodVolumes;
  clock: ConditionClock;
  ports: Map<number, number>;
  portNames: Map<string, number>;
  env?: Record<string, string>;
  handle?: ContainerHandle;
  phase: PodView['phase'];
  state: V1ContainerState;
  lastState?: V1ContainerState;
  startTime?: Date;
  ready: boolean;
  started: boolean;
  restarts: number;
  /** Set up (volumes, env) and launched at least once. */
  initialized: boolean;
  stopping: boolean;
  terminating: boolean;
  probes: NodeJS.Timeout[];
  lastLines: string[];
  /** The container's output (the last 5000 lines) and `kubectl logs -f` readers. */
  log: string[];
  followers: Set<(line: string | undefined) => void>;
  backoffMs: number;
  /** Status reports of this pod, one after the other. */
  reports: Promise<void>;
}

const ADDRESS = '127.0.0.1';
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const key = (o: { metadata?: { namespace?: string; name?: string } }) => `${o.metadata?.namespace}/${o.metadata?.name}`;

/**
 * The line that says why a process ended: the error line of an uncaught exception (`Error: ...`), else its last
 * plain-text line (a one-line error), else its last log line.
 */
export function lastMessage(lines: string[]): string {
  const plain = lines.filter((l) => !l.startsWith('{') && !/^\s+at |^Node\.js v\d|^\s*\^+\s*$|^\s*[{}]/.test(l));
  const error = plain.findLast((l) => /^(\w+:)?\w*(Error|Exception)\b.*:/.test(l));
  return (error ?? plain.at(-1) ?? lines.at(-1) ?? '').slice(0, 1000);
}

export class ProcessKubelet {
  private readonly core: CoreV1Api;
  private readonly runtime: ContainerRuntime;
  private readonly events: PodEvents;
  private readonly nodes: NodeAgent[] = [];
  /** Each node's own client (option identity: 'node'). */
  private readonly clients = new Map<string, { kc: KubeConfig; core: CoreV1Api }>();
  private server?: KubeletServer;
  private readonly proxies: ServiceProxies;
  private pods: (Informer<V1Pod> & ObjectCache<V1Pod>)[] = [];
  private services!: Informer<V1Service> & ObjectCache<V1Service>;
  private readonly running = new Map<string, PodRecord>();
  /** Pods whose final delete is under way (by uid). */
  private readonly deleting = new Set<string>();
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private syncing = false;
  private again = false;

  constructor(
    private readonly kc: KubeConfig,
    private readonly o: ProcessKubeletOptions,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.events = new PodEvents((pod) => this.coreOf(pod));
    this.runtime =
      o.runtime === 'docker' ? new DockerRuntime(o.docker ?? {}, o.env) : new ProcessRuntime(o.images, o.env);
    this.proxies = new ServiceProxies(() => this.backends());
  }

  async start(): Promise<void> {
    this.server = await KubeletServer.start((namespace, pod, container) => {
      const r = this.running.get(`${namespace}/${pod}`);
      if (!r || r.pod.spec?.containers[0]?.name !== container) return undefined;
      return {
        lines: r.log,
        follow: (f) => {
          r.followers.add(f);
          return () => r.followers.delete(f);
        },
      };
    });
    if (this.o.identity === 'node')
      for (const n of this.o.nodes) {
        const kc = await nodeKubeConfig(this.kc, n.name);
        this.clients.set(n.name, { kc, core: kc.makeApiClient(CoreV1Api) });
      }
    const runtimeVersion = await this.runtime.version();
    for (const n of this.o.nodes) {
      const agent = new NodeAgent(this.clients.get(n.name)?.kc ?? this.kc, [n], {
        runtimeVersion,
        address: ADDRESS,
        kubeletPort: this.server.port,
      });
      this.nodes.push(agent);
      await agent.start();
    }
    // A node may list and watch only its own pods (spec.nodeName field selector) but every Service.
    if (this.clients.size === 0)
      this.pods = [makeInformer(this.kc, '/api/v1/pods', () => this.core.listPodForAllNamespaces() as never)];
    else
      this.pods = [...this.clients].map(([node, c]) => {
        const fieldSelector = `spec.nodeName=${node}`;
        const list = () => c.core.listPodForAllNamespaces({ fieldSelector }) as never;
        return new ListWatch<V1Pod>('/api/v1/pods', new Watch(c.kc), list, false, undefined, fieldSelector);
      });
    const watcher = this.clients.values().next().value ?? { kc: this.kc, core: this.core };
    this.services = makeInformer(
      watcher.kc,
      '/api/v1/services',
      () => watcher.core.listServiceForAllNamespaces() as never,
    );
    for (const i of [...this.pods, this.services] as Informer<V1Pod>[]) {
      for (const verb of ['add', 'update', 'delete'] as const) i.on(verb, () => this.kick());
      i.on('error', () => setTimeout(() => !this.stopped && i.start().catch(() => {}), 500));
      await i.start();
    }
    this.timer = setInterval(() => this.kick(), 1000);
    this.kick();
  }

  /** Runs one sync pass now, or right after the current one. */
  private kick(): void {
    if (this.stopped) return;
    if (this.syncing) {
      this.again = true;
      return;
    }
    this.syncing = true;
    this.sync()
      .catch(() => {})
      .finally(() => {
        this.syncing = false;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async sync(): Promise<void> {
    await this.syncPods();
    await this.proxies.sync(this.services.list());
    for (const r of this.running.values())
      if (r.initialized && !r.stopping) await r.volumes.sync(r.pod.spec!.containers[0]!).catch(() => {});
  }

  private *backends(): Iterable<Backend> {
    for (const r of this.running.values())
      yield {
        namespace: r.pod.metadata!.namespace!,
        labels: r.pod.metadata?.labels ?? {},
        ready: r.ready,
        ports: r.ports,
        portNames: r.portNames,
      };
  }

  // ---- pods ------------------------------------------------------------------------------------------------

  private async syncPods(): Promise<void> {
    const mine = new Set(this.o.nodes.map((n) => n.name));
    const present = new Set<string>();
    for (const p of this.pods.flatMap((i) => i.list())) {
      if (!p.spec?.nodeName || !mine.has(p.spec.nodeName)) continue;
      const k = key(p);
      let r = this.running.get(k);
      if (r && r.pod.metadata?.uid !== p.metadata?.uid) {
        // A new pod of the same name (the old one is gone): the old one's container must not linger.
        void this.kill(k, r, 0);
        r = undefined;
      }
      present.add(k);
      if (r) r.pod = p;
      if (p.metadata?.deletionTimestamp) {
        void this.terminate(k, r, p);
        continue;
      }
      if (!r) {
        if (!p.status?.phase?.match(/Succeeded|Failed|Running/)) await this.startPod(p);
      } else if (!r.initialized && !r.stopping) await this.prepare(r);
    }
    // Gone from the API without the kubelet's final delete (force-deleted, or an API server that deletes at once).
    for (const [k, r] of this.running) if (!present.has(k)) void this.kill(k, r, 10);
  }

  private async startPod(p: V1Pod): Promise<void> {
    const c = p.spec!.containers[0]!;
    const dir = await mkdtemp(join(tmpdir(), 'fednano-pod-'));
    const r: PodRecord = {
      pod: p,
      dir,
      volumes: new PodVolumes(this.coreOf(p), p, dir),
      clock: new ConditionClock(),
      ports: new Map(),
      portNames: new Map(),
      phase: 'Pending',
      state: { waiting: { reason: 'ContainerCreating' } },
      ready: false,
      started: false,
      restarts: 0,
      initialized: false,
      stopping: false,
      terminating: false,
      probes: [],
      lastLines: [],
      log: [],
      followers: new Set(),
      backoffMs: 500,
      reports: Promise.resolve(),
    };
    this.running.set(key(p), r);
    for (const port of c.ports ?? []) {
      r.ports.set(port.containerPort, await freePort());
      if (port.name) r.portNames.set(port.name, port.containerPort);
    }
    await this.prepare(r);
  }

  /** Volumes and env, then the container; while something is missing the pod waits (retried each sync). */
  private async prepare(r: PodRecord): Promise<void> {
    const c = r.pod.spec!.containers[0]!;
    const waiting = (reason: string, message: string) => {
      if (r.state.waiting?.message !== message)
        this.events.emit(r.pod, reason === 'ContainerCreating' ? 'FailedMount' : 'Failed', message, c.name);
      r.state = { waiting: { reason, message } };
      this.report(r);
    };
    const problem = await r.volumes.prepare(c).catch((e: Error) => e.message);
    if (problem) {
      waiting('ContainerCreating', problem);
      return;
    }
    const env = await containerEnv(this.coreOf(r.pod), r.pod, c).catch((e: Error) => ({ waiting: e.message }));
    if ('waiting' in env) {
      waiting('CreateContainerConfigError', env.waiting);
      return;
    }
    r.env = env.env;
    r.initialized = true;
    r.startTime = new Date();
    await this.launch(r);
  }

  private async launch(r: PodRecord): Promise<void> {
    if (r.stopping || this.stopped) return;
    const c = r.pod.spec!.containers[0]!;
    const env = r.env ?? {};
    const l: ContainerLaunch = {
      pod: r.pod,
      container: c,
      args: [],
      env: {},
      mounts: r.volumes.mounts,
      ports: r.ports,
      dir: r.dir,
      resolveServices: (v, host) => this.proxies.resolveServices(v, host),
      serviceAccountDir: r.volumes.serviceAccountDir,
      apiServer: this.apiServer(),
      attempt: r.restarts,
    };
    const raw = (c.args ?? []).map((a) => expand(a, env));
    await this.runtime.prepare?.(l, [...raw, ...Object.values(env)]);
    const args = raw.map((a, i) => this.runtime.rewrite(a, raw[i - 1] ?? '', l));
    l.args = this.o.rewriteArgs?.(r.pod, args) ?? args;
    for (const [k, v] of Object.entries(env)) l.env[k] = this.runtime.rewrite(v, k, l);
    Object.assign(l.env, await this.runtime.extraEnv(l));
    const handle = await this.runtime.start(l, (line) => {
      r.lastLines = [...r.lastLines, line].slice(-20);
      r.log.push(line);
      if (r.log.length > 5000) r.log.splice(0, r.log.length - 5000);
      for (const f of r.followers) f(line);
      this.o.onLog?.(r.pod.metadata!.name!, line);
    });
    if (r.stopping || this.stopped) {
      // Deleted while it was starting: the kill already ran for the previous handle.
      handle.signal('SIGKILL');
      await handle.exited;
      await this.runtime.remove?.(r.pod).catch(() => {});
      return;
    }
    r.handle = handle;
    const startedAt = new Date();
    if (!handle.id) {
      // Never started (an image the runtime cannot run): the pod waits, as on an image pull error.
      const exit = await handle.exited;
      r.state = { waiting: { reason: exit.reason?.split(':')[0] ?? 'StartError', message: exit.reason } };
      this.events.emit(r.pod, 'Failed', exit.reason ?? 'the container did not start', c.name);
      this.report(r);
      return;
    }
    r.phase = 'Running';
    r.state = { running: { startedAt } };
    this.events.emit(r.pod, 'Pulled', `Container image "${c.image}" already present on machine`, c.name);
    this.events.emit(r.pod, 'Created', `Created container: ${c.name}`, c.name);
    this.events.emit(r.pod, 'Started', `Started container ${c.name}`, c.name);
    this.report(r);
    this.probe(r, handle);
    void handle.exited.then((exit) => this.exited(r, handle, exit, startedAt));
  }

  private async exited(
    r: PodRecord,
    handle: ContainerHandle,
    exit: { code: number | null; signal: string | null; reason?: string },
    startedAt: Date,
  ): Promise<void> {
    if (r.handle !== handle) return;
    for (const f of r.followers) f(undefined);
    r.followers.clear();
    for (const t of r.probes) clearInterval(t);
    r.probes = [];
    r.ready = false;
    if (r.stopping || this.stopped) return;
    const exitCode = exit.code ?? 128 + (exit.signal === 'SIGKILL' ? 9 : 15);
    const terminated = {
      exitCode,
      ...(exit.signal ? { signal: exit.signal === 'SIGKILL' ? 9 : 15 } : {}),
      reason: exitCode === 0 ? 'Completed' : 'Error',
      message: exit.reason ?? lastMessage(r.lastLines),
      startedAt,
      finishedAt: new Date(),
      containerID: handle.id,
    };
    const policy = r.pod.spec?.restartPolicy ?? 'Always';
    if (policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0)) {
      r.restarts++;
      r.started = false;
      r.lastState = { terminated };
      // CrashLoopBackOff: 0.5 s doubling to 10 s (the real kubelet: 10 s to 5 min), reset after 10 s of running.
      if (Date.now() - startedAt.getTime() > 10_000) r.backoffMs = 500;
      const wait = r.backoffMs;
      r.backoffMs = Math.min(r.backoffMs * 2, 10_000);
      r.state = {
        waiting: { reason: 'CrashLoopBackOff', message: `back-off ${wait / 1000}s restarting failed container` },
      };
      const name = r.pod.spec!.containers[0]!.name;
      this.events.emit(r.pod, 'BackOff', `Back-off restarting failed container ${name}`, name);
      this.report(r);
      setTimeout(() => void this.launch(r), wait);
      return;
    }
    r.phase = exitCode === 0 ? 'Succeeded' : 'Failed';
    r.state = { terminated };
    this.report(r);
  }

  // ---- probes ----------------------------------------------------------------------------------------------

  /** Startup, then readiness and liveness: httpGet and tcpSocket probes against the container's host ports. */
  private probe(r: PodRecord, handle: ContainerHandle): void {
    const c = r.pod.spec!.containers[0]!;
    const check = async (p: V1Probe): Promise<boolean> => {
      const target = p.httpGet?.port ?? p.tcpSocket?.port;
      if (target === undefined) return true; // exec and gRPC probes: not run here, taken as passing
      const containerPort = /^\d+$/.test(String(target)) ? Number(target) : r.portNames.get(String(target));
      const port = (containerPort !== undefined && r.ports.get(containerPort)) || Number(target);
      if (p.httpGet) {
        const s = await httpStatus(`http://127.0.0.1:${port}${p.httpGet.path ?? '/'}`);
        return s >= 200 && s < 400;
      }
      return new Promise((resolve) => {
        const s = connect(port, '127.0.0.1');
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      });
    };
    const current = () => r.handle === handle && !r.stopping;
    const setReady = (ready: boolean) => {
      if (ready === r.ready) return;
      r.ready = ready;
      this.report(r);
      this.kick();
    };
    const afterStart = () => {
      r.started = true;
      if (!c.readinessProbe) setReady(true);
      else {
        let busy = false;
        r.probes.push(
          setInterval(async () => {
            if (busy || !current()) return;
            busy = true;
            const ok = await check(c.readinessProbe!).catch(() => false);
            busy = false;
            if (!current()) return;
            if (!ok && r.ready) this.events.emit(r.pod, 'Unhealthy', 'Readiness probe failed', c.name);
            setReady(ok);
          }, 300),
        );
      }
      const live = c.livenessProbe;
      if (live) {
        let failures = 0;
        r.probes.push(
          setInterval(
            async () => {
              if (!current()) return;
              failures = (await check(live).catch(() => false)) ? 0 : failures + 1;
              if (failures >= (live.failureThreshold ?? 3) && current()) {
                this.o.onLog?.(r.pod.metadata!.name!, 'kubelet: liveness probe failed, restarting the container');
                this.events.emit(r.pod, 'Unhealthy', 'Liveness probe failed; the container will be restarted', c.name);
                handle.signal('SIGKILL');
              }
            },
            (live.periodSeconds ?? 10) * 1000,
          ),
        );
      }
      this.report(r);
    };
    const startup = c.startupProbe;
    if (!startup) {
      afterStart();
      return;
    }
    let failures = 0;
    const t = setInterval(async () => {
      if (!current()) return clearInterval(t);
      if (await check(startup).catch(() => false)) {
        clearInterval(t);
        if (current()) afterStart();
      } else if (++failures >= (startup.failureThreshold ?? 3) * Math.max(1, (startup.periodSeconds ?? 10) / 0.3)) {
        clearInterval(t);
        this.o.onLog?.(r.pod.metadata!.name!, 'kubelet: startup probe failed, restarting the container');
        this.events.emit(r.pod, 'Unhealthy', 'Startup probe failed; the container will be restarted', c.name);
        handle.signal('SIGKILL');
      }
    }, 300);
    r.probes.push(t);
  }

  // ---- status ----------------------------------------------------------------------------------------------

  /** Queues a status report of the pod (pods/status merge patch), after the ones before it. */
  private report(r: PodRecord): void {
    const c = r.pod.spec!.containers[0]!;
    const status = podStatus(
      {
        phase: r.phase,
        hostIP: ADDRESS,
        podIP: r.phase === 'Pending' ? undefined : ADDRESS,
        startTime: r.startTime,
        initialized: r.initialized,
        container: {
          name: c.name,
          image: c.image ?? '',
          imageID: r.handle?.imageID ?? '',
          containerID: r.handle?.id ?? '',
          ready: r.ready,
          started: r.started,
          restartCount: r.restarts,
          state: r.state,
          lastState: r.lastState,
        },
      },
      r.clock,
    );
    const { name, namespace } = r.pod.metadata!;
    r.reports = r.reports.then(async () => {
      if (r.terminating && r.phase !== 'Succeeded' && r.phase !== 'Failed') return;
      for (let attempt = 0; attempt < 5 && !this.stopped; attempt++) {
        try {
          await this.coreOf(r.pod).patchNamespacedPodStatus(
            { name: name!, namespace: namespace!, body: { status } },
            merge,
          );
          return;
        } catch (e) {
          if (isNotFound(e)) return;
          await new Promise((res) => setTimeout(res, 200 * (attempt + 1)));
        }
      }
    });
  }

  // ---- deletion --------------------------------------------------------------------------------------------

  /**
   * A pod with deletionTimestamp: stop its container (SIGTERM, SIGKILL after the grace period the API server
   * recorded), then delete it for good (gracePeriodSeconds 0, uid precondition), as the kubelet does.
   */
  private async terminate(k: string, r: PodRecord | undefined, p: V1Pod): Promise<void> {
    const uid = p.metadata!.uid!;
    if (this.deleting.has(uid)) return;
    this.deleting.add(uid);
    try {
      const grace = p.metadata?.deletionGracePeriodSeconds ?? p.spec?.terminationGracePeriodSeconds ?? 30;
      if (r) await this.kill(k, r, grace);
      await this.coreOf(p)
        .deleteNamespacedPod({
          name: p.metadata!.name!,
          namespace: p.metadata!.namespace!,
          gracePeriodSeconds: 0,
          body: { gracePeriodSeconds: 0, preconditions: { uid } },
        })
        .catch((e) => {
          if (!isNotFound(e) && (e as { code?: number }).code !== 409) throw e;
        });
    } catch {
      this.deleting.delete(uid); // tried again on the next sync
    }
  }

  /** Stops a pod's container (SIGTERM, SIGKILL after `graceSeconds`) and forgets the pod. */
  private async kill(k: string, r: PodRecord, graceSeconds: number): Promise<void> {
    if (r.stopping) return;
    r.stopping = true;
    r.terminating = true;
    for (const t of r.probes) clearInterval(t);
    const h = r.handle;
    if (h) {
      h.signal('SIGCONT'); // a paused process must be able to act on SIGTERM
      if (r.pod.metadata?.deletionTimestamp && !this.stopped)
        this.events.emit(r.pod, 'Killing', `Stopping container ${r.pod.spec!.containers[0]!.name}`);
      h.signal('SIGTERM');
      const timer = setTimeout(() => h.signal('SIGKILL'), graceSeconds * 1000);
      await h.exited;
      clearTimeout(timer);
    }
    if (this.running.get(k) === r) this.running.delete(k);
    await this.runtime.remove?.(r.pod).catch(() => {});
    await rm(r.dir, { recursive: true, force: true });
  }

  /** The client of the pod's node: its own identity, or the kubelet's KubeConfig. */
  private coreOf(pod: V1Pod): CoreV1Api {
    return this.clients.get(pod.spec?.nodeName ?? '')?.core ?? this.core;
  }

  private apiServer(): { server: string; ca?: string } {
    const cluster = this.kc.getCurrentCluster();
    let ca: string | undefined;
    if (cluster?.caData) ca = Buffer.from(cluster.caData, 'base64').toString();
    else if (cluster?.caFile) ca = readFileSync(cluster.caFile, 'utf8');
    return { server: cluster?.server ?? '', ca };
  }

  // ---- for tests -------------------------------------------------------------------------------------------

  /** For fault tests: signal the container of a pod (e.g. SIGKILL); Always-pods restart, Never-pods fail. */
  signalPod(namespace: string, name: string, signal: NodeJS.Signals): boolean {
    return this.running.get(`${namespace}/${name}`)?.handle?.signal(signal) ?? false;
  }

  /** The local port kube-proxy gives a Service port (undefined until the Service is proxied). */
  servicePort(namespace: string, service: string, port: number): number | undefined {
    return this.proxies.port(namespace, service, port);
  }

  podNames(namespace: string, prefix = ''): string[] {
    return [...this.running.keys()].filter((k) => k.startsWith(`${namespace}/${prefix}`)).map((k) => k.split('/')[1]!);
  }

  /** The last error of a node heartbeat or lease renewal (undefined while they succeed). */
  get nodeError(): string | undefined {
    return this.nodes.map((n) => n.lastError).find(Boolean);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    for (const n of this.nodes) n.stop();
    await Promise.all([...this.running].map(([k, r]) => this.kill(k, r, 10)));
    this.proxies.close();
    this.runtime.close?.();
    this.server?.close();
    for (const i of [...this.pods, this.services]) await i?.stop();
  }
}
