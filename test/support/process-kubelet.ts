import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, httpStatus } from '@fednano/service-kit';
import {
  CoreV1Api,
  type Informer,
  type KubeConfig,
  makeInformer,
  type ObjectCache,
  type V1Container,
  type V1Pod,
  type V1Service,
} from '@kubernetes/client-node';

/**
 * A process kubelet for the emulated cluster: it plays the node-side parts of Kubernetes on this machine (the API
 * server's own deployment controller and scheduler, options `deploymentController` and `schedulePods`, make and
 * bind the Pods).
 * - Kubelet: registers its nodes, then runs each container of a Pod bound to one of its nodes as a local process of the service the image
 *   names, with every container port mapped to a free local port, hostPath volumes mapped to their host folders,
 *   secret volumes written to temp folders (and re-synced while the pod runs),
 *   readiness from the httpGet probe, restarts for restartPolicy Always, and phases reported back in Pod status.
 * - kube-proxy: each Service port gets a stable local port forwarding to a Ready backend, and
 *   `<service>.<namespace>.svc[.cluster.local]:<port>` in a container's args resolves to it.
 */
export interface ProcessKubeletOptions {
  nodes: { name: string; labels: Record<string, string> }[];
  /** Image name (without tag) -> the service entry script to run. */
  images: Record<string, string>;
  /** Extra environment for every process. */
  env?: NodeJS.ProcessEnv;
  /** Where logs go: one file per pod under this folder (kept in memory otherwise). */
  onLog?: (pod: string, line: string) => void;
  /**
   * Rewrites a container's arguments (after ports and Service names are resolved) before its process starts: the
   * fault tests route one pod's NATS connection through a misbehaving proxy this way.
   */
  rewriteArgs?: (pod: V1Pod, args: string[]) => string[];
}

interface SecretVolume {
  namespace: string;
  secret: string;
  dir: string;
  mode?: number;
}

interface Running {
  pod: V1Pod;
  /** Secret volumes, re-synced from the API while the pod runs. */
  secretVolumes: SecretVolume[];
  child?: ChildProcess;
  ports: Map<number, number>;
  ready: boolean;
  restarts: number;
  stopping: boolean;
  lastLines: string[];
  /** How the previous run of a restarted container ended (reported as lastState.terminated). */
  lastExit?: { exitCode: number; message: string };
  probe?: NodeJS.Timeout;
}

/** The line that says why a process ended: its last plain-text line (a one-line error), else its last log line. */
function lastMessage(lines: string[]): string {
  return (lines.filter((l) => !l.startsWith('{')).at(-1) ?? lines.at(-1) ?? '').slice(0, 1000);
}

const key = (o: { metadata?: { namespace?: string; name?: string } }) => `${o.metadata?.namespace}/${o.metadata?.name}`;

export class ProcessKubelet {
  private readonly core: CoreV1Api;
  private pods!: Informer<V1Pod> & ObjectCache<V1Pod>;
  private services!: Informer<V1Service> & ObjectCache<V1Service>;
  private readonly running = new Map<string, Running>();
  private readonly proxies = new Map<string, { server: Server; port: number }>();
  private readonly emptyDirs: string[] = [];
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private syncing = false;
  private again = false;

  constructor(
    private readonly kc: KubeConfig,
    private readonly o: ProcessKubeletOptions,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
  }

  async start(): Promise<void> {
    for (const n of this.o.nodes) {
      const node = await this.core
        .createNode({ body: { metadata: { name: n.name, labels: { 'kubernetes.io/hostname': n.name, ...n.labels } } } })
        .catch(() => this.core.readNode({ name: n.name }));
      // Status goes through its subresource, as a kubelet reports it.
      await this.core.replaceNodeStatus({
        name: n.name,
        body: { ...node, status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }] } },
      });
    }
    this.pods = makeInformer(this.kc, '/api/v1/pods', () => this.core.listPodForAllNamespaces() as never);
    this.services = makeInformer(this.kc, '/api/v1/services', () => this.core.listServiceForAllNamespaces() as never);
    for (const i of [this.pods, this.services] as Informer<V1Pod>[]) {
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
    await this.syncProxies();
    for (const r of this.running.values())
      for (const v of r.secretVolumes) await this.projectSecret(v).catch(() => false);
  }

  // ---- kubelet ---------------------------------------------------------------------------------------------

  private async syncPods(): Promise<void> {
    const mine = new Set(this.o.nodes.map((n) => n.name));
    const present = new Set<string>();
    for (const p of this.pods.list()) {
      if (!p.spec?.nodeName || !mine.has(p.spec.nodeName)) continue;
      const k = key(p);
      present.add(k);
      const r = this.running.get(k);
      if (p.metadata?.deletionTimestamp) {
        if (r) this.stopPod(r);
        continue;
      }
      if (!r && !p.status?.phase?.match(/Succeeded|Failed|Running/)) await this.startPod(p);
    }
    for (const [k, r] of this.running) if (!present.has(k)) this.stopPod(r);
  }

  private resolve(value: string, mounts: Map<string, string>): string {
    return value
      .replace(/\b([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)\b/g, (all, svc, ns, port) => {
        const proxy = this.proxies.get(`${ns}/${svc}:${port}`);
        return proxy ? `127.0.0.1:${proxy.port}` : all;
      })
      .replace(/^(\/[^ ]*)$/, (path) => {
        for (const [mount, host] of mounts)
          if (path === mount || path.startsWith(`${mount}/`)) return host + path.slice(mount.length);
        return path;
      });
  }

  private async startPod(p: V1Pod): Promise<void> {
    const c = p.spec!.containers[0]!;
    const image = (c.image ?? '').replace(/:[^/]*$/, '');
    const entry = this.o.images[image] ?? Object.entries(this.o.images).find(([k]) => image.endsWith(k))?.[1];
    const r: Running = {
      pod: p,
      secretVolumes: [],
      ports: new Map(),
      ready: false,
      restarts: 0,
      stopping: false,
      lastLines: [],
    };
    this.running.set(key(p), r);
    if (!entry) {
      await this.setStatus(p, {
        phase: 'Failed',
        reason: 'ErrImagePull',
        message: `the process kubelet has no entry for image ${c.image}`,
      });
      return;
    }
    for (const port of c.ports ?? []) r.ports.set(port.containerPort, await freePort());
    const mounts = new Map<string, string>();
    for (const m of c.volumeMounts ?? []) {
      const v = p.spec!.volumes?.find((x) => x.name === m.name);
      if (v?.hostPath) mounts.set(m.mountPath, v.hostPath.path);
      else if (v?.emptyDir) {
        const dir = await mkdtemp(join(tmpdir(), 'fednano-emptydir-'));
        this.emptyDirs.push(dir);
        mounts.set(m.mountPath, dir);
      } else if (v?.secret?.secretName) {
        const dir = await mkdtemp(join(tmpdir(), 'fednano-secret-'));
        this.emptyDirs.push(dir);
        mounts.set(m.mountPath, dir);
        const volume = {
          namespace: p.metadata!.namespace!,
          secret: v.secret.secretName,
          dir,
          mode: v.secret.defaultMode,
        };
        if (!(await this.projectSecret(volume))) {
          await this.setStatus(p, {
            phase: 'Pending',
            reason: 'ContainerCreating',
            message: `secret "${v.secret.secretName}" not found`,
          });
          this.running.delete(key(p)); // tried again on the next sync, as the kubelet retries the mount
          return;
        }
        r.secretVolumes.push(volume);
      }
    }
    await this.setStatus(p, {
      phase: 'Running',
      podIP: '127.0.0.1',
      hostIP: '127.0.0.1',
      startTime: new Date() as never,
      conditions: [
        { type: 'PodScheduled', status: 'True' },
        { type: 'Ready', status: 'False' },
      ],
    });
    this.launch(r, entry, c, mounts);
  }

  private launch(r: Running, entry: string, c: V1Container, mounts: Map<string, string>): void {
    const resolved = (c.args ?? []).map((a, i, all) => {
      // The container's own ports: `--port 50051` listens on the mapped local port.
      const prev = all[i - 1] ?? '';
      if (/^--.*port$/.test(prev) && r.ports.has(Number(a))) return String(r.ports.get(Number(a)));
      return this.resolve(a, mounts);
    });
    const args = this.o.rewriteArgs?.(r.pod, resolved) ?? resolved;
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.o.env };
    for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = this.resolve(e.value, mounts);
    const child = spawn(process.execPath, [entry, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    r.child = child;
    const onData = (b: Buffer) => {
      for (const line of b.toString().split('\n').filter(Boolean)) {
        r.lastLines = [...r.lastLines, line].slice(-20);
        this.o.onLog?.(r.pod.metadata!.name!, line);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    const probe = c.readinessProbe?.httpGet;
    if (probe) {
      const port = r.ports.get(Number(probe.port)) ?? Number(probe.port);
      r.probe = setInterval(async () => {
        const ok = (await httpStatus(`http://127.0.0.1:${port}${probe.path ?? '/'}`)) === 200;
        if (ok !== r.ready) {
          r.ready = ok;
          await this.setReady(r);
        }
      }, 300);
    } else {
      r.ready = true;
      void this.setReady(r);
    }
    child.once('exit', (code, signal) => {
      clearInterval(r.probe);
      r.ready = false;
      if (r.stopping || this.stopped) return;
      const always = (r.pod.spec?.restartPolicy ?? 'Always') === 'Always';
      if (always) {
        r.restarts++;
        r.lastExit = { exitCode: code ?? 137, message: lastMessage(r.lastLines) };
        void this.setReady(r);
        setTimeout(() => !r.stopping && !this.stopped && this.launch(r, entry, c, mounts), 500);
        return;
      }
      const message = lastMessage(r.lastLines);
      void this.setStatus(r.pod, {
        phase: code === 0 ? 'Succeeded' : 'Failed',
        conditions: [{ type: 'Ready', status: 'False' }],
        containerStatuses: [
          {
            name: c.name,
            image: c.image ?? '',
            imageID: '',
            ready: false,
            restartCount: r.restarts,
            state: {
              terminated: {
                exitCode: code ?? 137,
                reason: signal ? 'Killed' : code === 0 ? 'Completed' : 'Error',
                message: message.slice(0, 1000),
              },
            },
          },
        ],
      });
    });
  }

  private async setReady(r: Running): Promise<void> {
    const c = r.pod.spec!.containers[0]!;
    await this.setStatus(r.pod, {
      phase: 'Running',
      podIP: '127.0.0.1',
      conditions: [
        { type: 'PodScheduled', status: 'True' },
        { type: 'Ready', status: r.ready ? 'True' : 'False' },
      ],
      containerStatuses: [
        {
          name: c.name,
          image: c.image ?? '',
          imageID: '',
          ready: r.ready,
          restartCount: r.restarts,
          state: { running: {} },
          ...(r.lastExit ? { lastState: { terminated: { ...r.lastExit, reason: 'Error' } } } : {}),
        },
      ],
    });
    this.kick();
  }

  private async setStatus(p: V1Pod, status: NonNullable<V1Pod['status']>): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const fresh = await this.core.readNamespacedPod({ name: p.metadata!.name!, namespace: p.metadata!.namespace! });
        await this.core.replaceNamespacedPodStatus({
          name: p.metadata!.name!,
          namespace: p.metadata!.namespace!,
          body: { ...fresh, status: { ...fresh.status, ...status } },
        });
        return;
      } catch (e) {
        if ((e as { code?: number }).code === 404) return;
      }
    }
  }

  /**
   * Writes a Secret's keys as files (a secret volume); false when the Secret does not exist. Called again while the
   * pod runs, so updated Secrets (renewed certificates, revocation lists) reach the files as the kubelet syncs them.
   */
  private async projectSecret(v: SecretVolume): Promise<boolean> {
    let secret: Awaited<ReturnType<CoreV1Api['readNamespacedSecret']>>;
    try {
      secret = await this.core.readNamespacedSecret({ namespace: v.namespace, name: v.secret });
    } catch (e) {
      if ((e as { code?: number }).code === 404) return false;
      throw e;
    }
    for (const [k, b64] of Object.entries(secret.data ?? {})) {
      const file = join(v.dir, k);
      const content = Buffer.from(b64, 'base64');
      const current = await readFile(file).catch(() => undefined);
      if (current?.equals(content)) continue;
      // Replace atomically, as the kubelet swaps a symlinked folder: a reader never sees a half-written file.
      await writeFile(`${file}.tmp`, content, { mode: v.mode ?? 0o644 });
      await rename(`${file}.tmp`, file);
    }
    return true;
  }

  private stopPod(r: Running): void {
    r.stopping = true;
    clearInterval(r.probe);
    r.child?.kill('SIGTERM');
    const child = r.child;
    setTimeout(() => child?.kill('SIGKILL'), 10_000).unref();
    this.running.delete(key(r.pod));
  }

  /** For fault tests: signal the process of a pod (e.g. SIGKILL); Always-pods restart, Never-pods fail. */
  signalPod(namespace: string, name: string, signal: NodeJS.Signals): boolean {
    const r = this.running.get(`${namespace}/${name}`);
    return r?.child?.kill(signal) ?? false;
  }

  /** The local port kube-proxy gives a Service port (undefined until the Service is proxied). */
  servicePort(namespace: string, service: string, port: number): number | undefined {
    return this.proxies.get(`${namespace}/${service}:${port}`)?.port;
  }

  podNames(namespace: string, prefix = ''): string[] {
    return [...this.running.keys()].filter((k) => k.startsWith(`${namespace}/${prefix}`)).map((k) => k.split('/')[1]!);
  }

  // ---- kube-proxy ------------------------------------------------------------------------------------------

  private async syncProxies(): Promise<void> {
    for (const s of this.services.list()) {
      for (const port of s.spec?.ports ?? []) {
        const id = `${s.metadata!.namespace}/${s.metadata!.name}:${port.port}`;
        if (this.proxies.has(id)) continue;
        const target = Number(port.targetPort ?? port.port);
        const backend = () => {
          for (const r of this.running.values()) {
            const labels = r.pod.metadata?.labels ?? {};
            const selected = Object.entries(s.spec?.selector ?? {}).every(([k, v]) => labels[k] === v);
            if (selected && r.ready && r.pod.metadata?.namespace === s.metadata!.namespace && r.ports.has(target))
              return r.ports.get(target);
          }
          return undefined;
        };
        const server = createServer((socket) => {
          const to = backend();
          if (!to) return socket.destroy();
          const upstream = tcpConnect(to, '127.0.0.1');
          socket.pipe(upstream).pipe(socket);
          const close = () => {
            socket.destroy();
            upstream.destroy();
          };
          socket.on('error', close);
          upstream.on('error', close);
        });
        const local = await new Promise<number>((resolve) =>
          server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
        );
        this.proxies.set(id, { server, port: local });
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    const children = [...this.running.values()]
      .map((r) => r.child)
      .filter((c) => c && c.exitCode === null && c.signalCode === null);
    for (const r of [...this.running.values()]) this.stopPod(r);
    await Promise.all(children.map((c) => new Promise((res) => c!.once('exit', res))));
    for (const p of this.proxies.values()) p.server.close();
    for (const i of [this.pods, this.services]) await i?.stop();
    for (const d of this.emptyDirs) await rm(d, { recursive: true, force: true });
  }
}
