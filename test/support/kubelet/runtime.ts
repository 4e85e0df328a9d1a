import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { V1Container, V1Pod } from '@kubernetes/client-node';

/**
 * How the kubelet runs one container: a local process of the service the image names (`ProcessRuntime`), or a
 * Docker Engine container (`DockerRuntime`, docker-runtime.ts). The kubelet hands over the container as the API
 * describes it (args and env with `$(VAR)` and valueFrom resolved, volumes as host folders, each container port
 * with a free host port); the runtime decides how addresses and paths look from inside what it runs.
 */
export interface Mount {
  host: string;
  readOnly: boolean;
}

export interface ContainerLaunch {
  pod: V1Pod;
  container: V1Container;
  args: string[];
  env: Record<string, string>;
  /** mountPath -> host folder. */
  mounts: Map<string, Mount>;
  /** containerPort -> host port (where the kubelet probes it and kube-proxy forwards to). */
  ports: Map<number, number>;
  /** The pod's folder on the host, for files the runtime writes (a kubeconfig). */
  dir: string;
  /** Resolves `<svc>.<ns>.svc:<port>` to a proxy, reached at `host` (127.0.0.1 or the container gateway). */
  resolveServices: (value: string, host: string) => string;
  /** The Service-account token folder (the kube-api-access volume's host folder), when the pod mounts one. */
  serviceAccountDir?: string;
  /** The API server the kubelet talks to, and its CA (PEM), for a process's in-cluster-equivalent kubeconfig. */
  apiServer: { server: string; ca?: string };
  /** Restart count, so each run's container has its own name. */
  attempt: number;
}

export interface ContainerExit {
  code: number | null;
  signal: string | null;
  /** Set when the container never started (its image unknown to the runtime, a failed `docker run`). */
  reason?: string;
}

export interface ContainerHandle {
  /** `process://<pid>` or `docker://<id>`. */
  readonly id: string;
  readonly imageID: string;
  readonly exited: Promise<ContainerExit>;
  signal(s: NodeJS.Signals): boolean;
}

export interface ContainerRuntime {
  /** For the Node's nodeInfo.containerRuntimeVersion. */
  version(): Promise<string>;
  /**
   * Rewrites one argument or env value for what runs inside: Service names, the container's own ports (`--port
   * N`, `*_PORT=N`) and mount paths where the runtime needs it. `key` is the previous argument or the env name.
   */
  rewrite(value: string, key: string, l: ContainerLaunch): string;
  /** Called with the raw args and env values before `rewrite` (e.g. to open forwarders they need). */
  prepare?(l: ContainerLaunch, values: string[]): Promise<void>;
  /** The env the runtime adds (KUBECONFIG, KUBERNETES_SERVICE_HOST, ...). */
  extraEnv(l: ContainerLaunch): Promise<Record<string, string>>;
  start(l: ContainerLaunch, onLine: (line: string) => void): Promise<ContainerHandle>;
  /** Removes what is left of the pod's containers (stopped Docker containers). */
  remove?(pod: V1Pod): Promise<void>;
  /** Releases what the runtime holds (forwarders). */
  close?(): void;
}

/** Image without registry-less tag: `fednano/llm-host:0.1.0` -> `fednano/llm-host`. */
export const imageName = (image: string | undefined): string =>
  (image ?? '').replace(/@.*$/, '').replace(/:[^/]*$/, '');

/** A container port behind `--*port N` / `--*port=N` or a `*PORT` env var: the port the process must listen on. */
export function mapOwnPort(value: string, key: string, ports: Map<number, number>): string {
  const eq = /^(--[\w-]*port=)(\d+)$/i.exec(value);
  if (eq && ports.has(Number(eq[2]))) return `${eq[1]}${ports.get(Number(eq[2]))}`;
  if ((/^--[\w-]*port$/i.test(key) || /PORT$/.test(key)) && /^\d+$/.test(value) && ports.has(Number(value)))
    return String(ports.get(Number(value)));
  return value;
}

/** Runs each container as `node <entry>` for the service its image names; paths and ports mapped to the host's. */
export class ProcessRuntime implements ContainerRuntime {
  constructor(
    /** Image name (without tag) -> the entry script. */
    private readonly images: Record<string, string>,
    private readonly baseEnv: NodeJS.ProcessEnv = {},
  ) {}

  entry(image: string | undefined): string | undefined {
    const name = imageName(image);
    return this.images[name] ?? Object.entries(this.images).find(([k]) => name.endsWith(k))?.[1];
  }

  async version(): Promise<string> {
    return `process://node-${process.version}`;
  }

  rewrite(value: string, key: string, l: ContainerLaunch): string {
    const own = mapOwnPort(value, key, l.ports);
    if (own !== value) return own;
    return l.resolveServices(value, '127.0.0.1').replace(/^(\/[^ ]*)$/, (path) => {
      for (const [mount, m] of l.mounts)
        if (path === mount || path.startsWith(`${mount}/`)) return m.host + path.slice(mount.length);
      return path;
    });
  }

  async extraEnv(l: ContainerLaunch): Promise<Record<string, string>> {
    if (!l.serviceAccountDir) return {};
    // The in-cluster config, as a kubeconfig a client reads first ($KUBECONFIG): the pod's own token, renewed by
    // the kubelet in the projected volume (client-node's tokenFile provider re-reads it every minute).
    const caFile = join(l.serviceAccountDir, 'ca.crt');
    const file = join(l.dir, 'kubeconfig');
    let ca = '';
    if (existsSync(caFile)) ca = `certificate-authority: ${caFile}`;
    else if (l.apiServer.ca) ca = `certificate-authority-data: ${Buffer.from(l.apiServer.ca).toString('base64')}`;
    const namespace = l.pod.metadata!.namespace!;
    await writeFile(
      file,
      `apiVersion: v1
kind: Config
clusters:
- name: in-cluster
  cluster:
    server: ${l.apiServer.server}
    ${ca}
users:
- name: service-account
  user:
    auth-provider:
      name: tokenFile
      config:
        tokenFile: ${join(l.serviceAccountDir, 'token')}
contexts:
- name: in-cluster
  context: { cluster: in-cluster, user: service-account, namespace: ${namespace} }
current-context: in-cluster
`,
    );
    return { KUBECONFIG: file };
  }

  async start(l: ContainerLaunch, onLine: (line: string) => void): Promise<ContainerHandle> {
    const entry = this.entry(l.container.image);
    if (!entry)
      return {
        id: '',
        imageID: '',
        exited: Promise.resolve({
          code: null,
          signal: null,
          reason: `ErrImagePull: the process kubelet has no entry for image ${l.container.image}`,
        }),
        signal: () => false,
      };
    const child: ChildProcess = spawn(process.execPath, [entry, ...l.args], {
      env: { ...process.env, ...this.baseEnv, ...l.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const onData = (b: Buffer) => {
      for (const line of b.toString().split('\n').filter(Boolean)) onLine(line);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    const exited = new Promise<ContainerExit>((resolve) => {
      child.once('error', (e) => resolve({ code: null, signal: null, reason: `StartError: ${e.message}` }));
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    return {
      id: `process://${child.pid}`,
      imageID: `process://${entry}`,
      exited,
      signal: (s) => child.exitCode === null && child.signalCode === null && child.kill(s),
    };
  }
}
