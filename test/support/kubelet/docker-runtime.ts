import { execFile, spawn } from 'node:child_process';
import { connect, createServer, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import { promisify } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node';
import type { ContainerExit, ContainerHandle, ContainerLaunch, ContainerRuntime } from './runtime.js';

/**
 * Runs containers through the Docker Engine's CLI: `docker run` of the image the Pod names on the default bridge,
 * each container port published on 127.0.0.1 at the kubelet's host port, volumes bind-mounted at their mountPaths
 * (the ServiceAccount volume at /var/run/secrets/kubernetes.io/serviceaccount, with KUBERNETES_SERVICE_HOST/PORT
 * naming the API server as the container reaches it), the container securityContext applied (read-only root,
 * runAsUser/Group, dropped capabilities, no-new-privileges). Services and host loopback addresses in args and env
 * (`127.0.0.1:<port>`: NATS, the API server, kube-proxy's ports) become forwarders on the bridge gateway, so host
 * services that listen on loopback only are reached from containers unchanged.
 */
const exec = promisify(execFile);
/** A host loopback address with its port: (prefix)(host)(port). */
const LOOPBACK = /(^|\/\/|@|=)(127\.0\.0\.1|localhost):(\d+)/g;
/** How containers name the API server (a name the apiserver's serving certificate carries). */
const API_NAME = 'kubernetes.default.svc';

export interface DockerRuntimeOptions {
  /** The docker CLI (default `docker`). */
  docker?: string;
  /** How containers reach the host (default: the bridge network's gateway, e.g. 172.17.0.1). */
  hostAddress?: string;
  /** Extra `docker run` flags for every container. */
  runFlags?: string[];
}

export class DockerRuntime implements ContainerRuntime {
  private readonly docker: string;
  private host?: string;
  /** Host loopback port -> its forwarder on the gateway. */
  private readonly forwards = new Map<number, { server: Server; port: number }>();

  constructor(
    private readonly o: DockerRuntimeOptions,
    private readonly baseEnv: NodeJS.ProcessEnv = {},
  ) {
    this.docker = o.docker ?? 'docker';
  }

  private async cli(...args: string[]): Promise<string> {
    return (await exec(this.docker, args, { encoding: 'utf8', maxBuffer: 16 << 20 })).stdout.trim();
  }

  /** The address containers reach the host at: the bridge's gateway (docker0's address when IPAM names none). */
  async hostAddress(): Promise<string> {
    if (this.host) return this.host;
    if (this.o.hostAddress) return (this.host = this.o.hostAddress);
    const gateway = await this.cli(
      'network',
      'inspect',
      'bridge',
      '--format',
      '{{range .IPAM.Config}}{{.Gateway}} {{.Subnet}}{{end}}',
    );
    const fields = gateway.split(/\s+/);
    const ip = fields.find((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
    const subnet = fields.find((f) => f.includes('/'));
    if (ip) return (this.host = ip);
    const bridge = await this.cli(
      'network',
      'inspect',
      'bridge',
      '--format',
      '{{index .Options "com.docker.network.bridge.name"}}',
    ).catch(() => '');
    const nic = networkInterfaces()[bridge || 'docker0']?.find((a) => a.family === 'IPv4');
    if (nic) return (this.host = nic.address);
    // The subnet's first address, which is the gateway Docker assigns by default.
    const base = /^(\d+\.\d+\.\d+)\.\d+\//.exec(subnet ?? '');
    if (!base) throw new Error(`cannot tell how containers reach the host (bridge network: ${gateway})`);
    return (this.host = `${base[1]}.1`);
  }

  async version(): Promise<string> {
    await this.hostAddress();
    return `docker://${await this.cli('version', '--format', '{{.Server.Version}}')}`;
  }

  /**
   * Host loopback addresses (`127.0.0.1:<port>`, `localhost:<port>`: NATS, the API server, kube-proxy's Service
   * ports) get a forwarder on the bridge gateway, so containers reach host services that listen on loopback only.
   */
  async prepare(l: ContainerLaunch, values: string[]): Promise<void> {
    for (const v of values)
      for (const m of l.resolveServices(v, '127.0.0.1').matchAll(LOOPBACK)) await this.forward(Number(m[3]));
  }

  private async forward(port: number): Promise<number> {
    const have = this.forwards.get(port);
    if (have) return have.port;
    const server = createServer((socket) => {
      const upstream = connect(port, '127.0.0.1');
      socket.pipe(upstream).pipe(socket);
      const close = () => {
        socket.destroy();
        upstream.destroy();
      };
      socket.on('error', close);
      upstream.on('error', close);
    });
    const local = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, this.host, () => resolve((server.address() as { port: number }).port));
    });
    this.forwards.set(port, { server, port: local });
    return local;
  }

  rewrite(value: string, _key: string, l: ContainerLaunch): string {
    return l.resolveServices(value, '127.0.0.1').replace(LOOPBACK, (all, before, _host, port) => {
      const f = this.forwards.get(Number(port));
      return f ? `${before}${this.host}:${f.port}` : all;
    });
  }

  async extraEnv(l: ContainerLaunch): Promise<Record<string, string>> {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.baseEnv)) if (v !== undefined) env[k] = v;
    if (l.serviceAccountDir) {
      // In-cluster config: the API server by a name its certificate carries (kubernetes.default.svc, resolved to
      // the gateway with --add-host), at the gateway forwarder of its loopback port.
      const url = new URL(l.apiServer.server);
      const port = Number(url.port || 443);
      const local = ['127.0.0.1', 'localhost'].includes(url.hostname) ? await this.forward(port) : port;
      env.KUBERNETES_SERVICE_HOST = ['127.0.0.1', 'localhost'].includes(url.hostname) ? API_NAME : url.hostname;
      env.KUBERNETES_SERVICE_PORT = String(local);
      env.KUBERNETES_SERVICE_PORT_HTTPS = env.KUBERNETES_SERVICE_PORT;
    }
    return env;
  }

  close(): void {
    for (const f of this.forwards.values()) f.server.close();
    this.forwards.clear();
  }

  /** `docker run` flags for the launch (exported for the unit test). */
  runArgs(l: ContainerLaunch): string[] {
    const c = l.container;
    const pod = l.pod.metadata!;
    const name = `k8s_${c.name}_${pod.name}_${pod.namespace}_${pod.uid?.slice(0, 8)}_${l.attempt}`;
    const flags = [
      'run',
      '--detach',
      '--name',
      name,
      '--label',
      `io.kubernetes.pod.uid=${pod.uid}`,
      '--label',
      `io.kubernetes.pod.name=${pod.name}`,
      '--label',
      `io.kubernetes.pod.namespace=${pod.namespace}`,
      '--hostname',
      pod.name!.slice(0, 63),
      '--add-host',
      `host.docker.internal:${this.host}`,
      '--add-host',
      `${API_NAME}:${this.host}`,
    ];
    for (const [containerPort, hostPort] of l.ports) flags.push('--publish', `127.0.0.1:${hostPort}:${containerPort}`);
    for (const [path, m] of l.mounts) flags.push('--volume', `${m.host}:${path}${m.readOnly ? ':ro' : ''}`);
    for (const [k, v] of Object.entries(l.env)) flags.push('--env', `${k}=${v}`);
    const sc = c.securityContext ?? {};
    const psc = l.pod.spec?.securityContext ?? {};
    if (sc.readOnlyRootFilesystem) flags.push('--read-only');
    const user = sc.runAsUser ?? psc.runAsUser;
    const group = sc.runAsGroup ?? psc.runAsGroup;
    if (user !== undefined) flags.push('--user', group !== undefined ? `${user}:${group}` : String(user));
    if (psc.fsGroup !== undefined) flags.push('--group-add', String(psc.fsGroup));
    for (const cap of sc.capabilities?.drop ?? []) flags.push('--cap-drop', cap);
    for (const cap of sc.capabilities?.add ?? []) flags.push('--cap-add', cap);
    if (sc.allowPrivilegeEscalation === false) flags.push('--security-opt', 'no-new-privileges');
    if (sc.privileged) flags.push('--privileged');
    if (c.workingDir) flags.push('--workdir', c.workingDir);
    const limits = c.resources?.limits ?? {};
    if (limits.memory) flags.push('--memory', String(limits.memory).replace(/i$/, '').toLowerCase());
    flags.push(...(this.o.runFlags ?? []));
    const [entrypoint, ...command] = c.command ?? [];
    if (entrypoint) flags.push('--entrypoint', entrypoint);
    flags.push(c.image!, ...command, ...l.args);
    return flags;
  }

  async start(l: ContainerLaunch, onLine: (line: string) => void): Promise<ContainerHandle> {
    const failed = (reason: string): ContainerHandle => ({
      id: '',
      imageID: '',
      exited: Promise.resolve({ code: null, signal: null, reason }),
      signal: () => false,
    });
    let imageID: string;
    try {
      imageID = await this.cli('image', 'inspect', '--format', '{{.Id}}', l.container.image!);
    } catch {
      return failed(`ErrImagePull: image ${l.container.image} is not in the local Docker Engine (nothing is pulled)`);
    }
    let id: string;
    try {
      id = await this.cli(...this.runArgs(l));
    } catch (e) {
      const stderr = String((e as { stderr?: string }).stderr ?? (e as Error).message).trim();
      return failed(`RunContainerError: ${stderr.split('\n').at(-1)}`);
    }
    const logs = spawn(this.docker, ['logs', '--follow', id], { stdio: ['ignore', 'pipe', 'pipe'] });
    const onData = (b: Buffer) => {
      for (const line of b.toString().split('\n').filter(Boolean)) onLine(line);
    };
    logs.stdout.on('data', onData);
    logs.stderr.on('data', onData);
    const exited = this.cli('wait', id).then(
      async (code): Promise<ContainerExit> => {
        // The last lines reach onLine before the exit is reported.
        await new Promise((res) => (logs.exitCode === null ? logs.once('exit', res) : res(undefined)));
        const n = Number(code);
        return { code: n, signal: n === 137 ? 'SIGKILL' : null };
      },
      (e: Error): ContainerExit => ({ code: null, signal: null, reason: `docker wait: ${e.message}` }),
    );
    let done = false;
    void exited.then(() => {
      done = true;
    });
    return {
      id: `docker://${id}`,
      imageID: `docker-pullable://${imageID}`,
      exited,
      signal: (s) => {
        if (done) return false;
        const cmd = s === 'SIGSTOP' ? ['pause', id] : s === 'SIGCONT' ? ['unpause', id] : ['kill', '--signal', s, id];
        this.cli(...cmd).catch(() => {});
        return true;
      },
    };
  }

  async remove(pod: V1Pod): Promise<void> {
    const ids = await this.cli(
      'ps',
      '--all',
      '--quiet',
      '--filter',
      `label=io.kubernetes.pod.uid=${pod.metadata!.uid}`,
    );
    if (ids) await this.cli('rm', '--force', ...ids.split('\n'));
  }
}
