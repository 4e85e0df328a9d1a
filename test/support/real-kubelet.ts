import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { accessSync, constants, createWriteStream, existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '@fednano/service-kit';
import type { ControlPlane } from './control-plane.js';
import { TOOLS_DIR, toolPath, toolsProblem } from './tools.js';

/**
 * A real kubelet (the pinned v1.36 build from scripts/install-tools.sh) on Debian's containerd and runc, registered
 * with a {@link ControlPlane} as a real Node: x509 + webhook authentication, Webhook authorization, cgroupfs, CNI
 * bridge networking. Its containerd is a private instance (own config, root, state and socket under the kubelet's
 * folder), never the system's or dockerd's; the pause image is the local one scripts/install-real-kubelet.sh builds,
 * since no registry need be reachable. Images from the Docker engine are copied in with {@link importDockerImage}.
 *
 *   const rk = await RealKubelet.start(cp, { nodeName: 'real-0' });   // resolves once the Node is Ready
 *   await rk.importDockerImage('debian:bookworm-slim');
 *   await rk.stop();
 *
 * What this machine needed (a Firecracker VM, cgroup v1): `failCgroupV1: false` (kubelet >= 1.35 refuses cgroup v1
 * otherwise); containerd's `restrict_oom_score_adj`, because the process lacks CAP_SYS_RESOURCE and runc cannot set
 * the sandbox's oom_score_adj of -998 (runc's error is only "can't get final child's PID from pipe: EOF"); a
 * non-loopback node IP (the kubelet refuses 127.0.0.1 as the Node's address).
 */
const exec = promisify(execFile);

export const PAUSE_IMAGE_DIR = join(TOOLS_DIR, 'real-kubelet');
const PAUSE_TAR = join(PAUSE_IMAGE_DIR, 'pause-oci.tar');
const PAUSE_REF_FILE = join(PAUSE_IMAGE_DIR, 'pause-oci.ref');
const CNI_DIRS = ['/usr/lib/cni', '/opt/cni/bin'];
const CNI_PLUGINS = ['bridge', 'host-local', 'loopback', 'portmap'];
const CGROUP = '/sys/fs/cgroup';

function onPath(bin: string): string | undefined {
  const dirs = [
    ...(process.env.PATH ?? '').split(delimiter),
    '/usr/local/sbin',
    '/usr/local/bin',
    '/usr/sbin',
    '/usr/bin',
  ];
  for (const d of dirs) {
    try {
      accessSync(join(d, bin), constants.X_OK);
      return join(d, bin);
    } catch {}
  }
  return undefined;
}

const cniDir = (): string | undefined => CNI_DIRS.find((d) => CNI_PLUGINS.every((p) => existsSync(join(d, p))));

const cgroupV2 = (): boolean => existsSync(join(CGROUP, 'cgroup.controllers'));

/** The cgroup hierarchies to make the kubelet's cgroup root in: the v2 root, or each v1 controller's mount. */
function cgroupMounts(): string[] {
  if (cgroupV2()) return [CGROUP];
  return readdirSync(CGROUP)
    .map((n) => join(CGROUP, n))
    .filter((p) => {
      try {
        return lstatSync(p).isDirectory();
      } catch {
        return false;
      }
    });
}

/** Why a real kubelet cannot run here (naming what is missing and how to get it), or undefined. */
export function realKubeletProblem(): string | undefined {
  if (process.env.FEDNANO_SKIP_REAL_KUBELET) return 'FEDNANO_SKIP_REAL_KUBELET is set';
  if (process.platform !== 'linux') return `a kubelet needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'a kubelet with containerd needs root (cgroups, mounts, network namespaces)';
  const tools = toolsProblem(['kubelet']);
  if (tools) return tools;
  const missing = ['containerd', 'ctr', 'runc'].filter((b) => !onPath(b));
  if (missing.length) return `${missing.join(', ')} not installed (run: bash scripts/install-real-kubelet.sh)`;
  if (!cniDir())
    return `CNI plugins (${CNI_PLUGINS.join(', ')}) not in ${CNI_DIRS.join(' or ')} (run: bash scripts/install-real-kubelet.sh)`;
  if (!existsSync(PAUSE_TAR) || !existsSync(PAUSE_REF_FILE))
    return `no local pause image at ${PAUSE_TAR} (run: bash scripts/install-real-kubelet.sh)`;
  try {
    accessSync(cgroupV2() ? CGROUP : join(CGROUP, 'memory'), constants.W_OK);
  } catch {
    return `${CGROUP} is not writable here (a container without cgroup delegation?)`;
  }
  return undefined;
}

/** The address of the interface holding the default route (the Node's InternalIP), else any non-loopback IPv4. */
function nodeIP(): string {
  let iface: string | undefined;
  try {
    const routes = readFileSync('/proc/net/route', 'utf8').split('\n').slice(1);
    iface = routes.map((l) => l.trim().split(/\s+/)).find((f) => f[1] === '00000000')?.[0];
  } catch {}
  const v4 = (name: string) => networkInterfaces()[name]?.find((a) => a.family === 'IPv4' && !a.internal)?.address;
  if (iface && v4(iface)) return v4(iface)!;
  for (const name of Object.keys(networkInterfaces())) if (v4(name)) return v4(name)!;
  return '127.0.0.1';
}

/** A 10.244.X.0/24 no route on this machine names yet (concurrent instances get different bridges and subnets). */
function freeSubnet(): string {
  let taken = '';
  try {
    taken = readFileSync('/proc/net/route', 'utf8');
  } catch {}
  for (let i = 0; i < 64; i++) {
    const x = 1 + Math.floor(Math.random() * 250);
    // /proc/net/route prints destinations little-endian hex: 10.244.x.0 -> 00 x F4 0A.
    const hex = `00${x.toString(16).padStart(2, '0')}F40A`.toUpperCase();
    if (!taken.includes(hex)) return `10.244.${x}.0/24`;
  }
  throw new Error('no free 10.244.x.0/24 subnet');
}

class Proc {
  readonly exited: Promise<number | null>;
  private tail = '';

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    const log = createWriteStream(logFile, { flags: 'a' });
    const keep = (b: Buffer) => {
      this.tail = (this.tail + b.toString()).slice(-16384);
      log.write(b);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code) => {
        log.end();
        resolve(code);
      }),
    );
  }

  static start(dir: string, name: string, bin: string, args: string[]): Proc {
    return new Proc(name, spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] }), join(dir, `${name}.log`));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  get output(): string {
    return this.tail;
  }

  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

export interface RealKubeletOptions {
  /** The Node's name (default real-0). */
  nodeName?: string;
  /** How long to wait for the Node to be Ready (default 90 s). */
  readyTimeoutMs?: number;
}

export class RealKubelet {
  private constructor(
    readonly nodeName: string,
    /** Working folder: containerd root/state/socket, kubelet root, certificates, configs, logs. */
    readonly dir: string,
    /** The private containerd's socket (for ctr -a). */
    readonly socket: string,
    /** The Node's InternalIP (the kubelet serves on it). */
    readonly nodeIP: string,
    /** Where the kubelet writes container logs: <podLogsDir>/<ns>_<pod>_<uid>/<container>/<restart>.log */
    readonly podLogsDir: string,
    readonly pauseImage: string,
    private readonly cgroupRoot: string,
    private readonly bridge: string,
    private readonly cp: ControlPlane,
    private readonly procs: { containerd?: Proc; kubelet?: Proc },
  ) {}

  static async start(cp: ControlPlane, o: RealKubeletOptions = {}): Promise<RealKubelet> {
    const problem = realKubeletProblem();
    if (problem) throw new Error(problem);
    const nodeName = o.nodeName ?? 'real-0';
    const dir = await mkdtemp(join(tmpdir(), `fednano-real-kubelet-${nodeName}-`));
    const id = dir
      .slice(-6)
      .toLowerCase()
      .replace(/[^a-z0-9]/g, 'x');
    const socket = join(dir, 'containerd.sock');
    const ip = nodeIP();
    const podLogsDir = join(dir, 'pod-logs');
    const pauseImage = readFileSync(PAUSE_REF_FILE, 'utf8').trim();
    const cgroupRoot = `/fednano-real-${id}`;
    const bridge = `fnrk${id}`.slice(0, 15);
    const procs: { containerd?: Proc; kubelet?: Proc } = {};
    const rk = new RealKubelet(nodeName, dir, socket, ip, podLogsDir, pauseImage, cgroupRoot, bridge, cp, procs);
    try {
      for (const d of ['containerd-root', 'containerd-state', 'cni-conf', 'kubelet', 'pod-logs'])
        await mkdir(join(dir, d), { recursive: true });

      // ---- containerd: a private instance, CRI on, cgroupfs, CNI bridge ----
      await writeFile(
        join(dir, 'cni-conf', '10-fednano-real.conflist'),
        JSON.stringify({
          cniVersion: '0.4.0',
          name: `fednano-real-${id}`,
          plugins: [
            {
              type: 'bridge',
              bridge,
              isGateway: true,
              ipMasq: true,
              hairpinMode: true,
              ipam: {
                type: 'host-local',
                ranges: [[{ subnet: freeSubnet() }]],
                routes: [{ dst: '0.0.0.0/0' }],
                dataDir: join(dir, 'cni-ipam'),
              },
            },
            { type: 'portmap', capabilities: { portMappings: true } },
            { type: 'loopback' },
          ],
        }),
      );
      await writeFile(
        join(dir, 'containerd.toml'),
        `version = 2
root = "${join(dir, 'containerd-root')}"
state = "${join(dir, 'containerd-state')}"
[grpc]
  address = "${socket}"
[ttrpc]
  address = "${socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${pauseImage}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # runc cannot lower oom_score_adj (the sandbox's -998) without CAP_SYS_RESOURCE, which a VM's or container's root
  # may lack: clamp every container's score to containerd's own instead.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${cniDir()}"
    conf_dir = "${join(dir, 'cni-conf')}"
[plugins."io.containerd.internal.v1.opt"]
  path = "${join(dir, 'containerd-opt')}"
`,
      );
      procs.containerd = Proc.start(dir, 'containerd', onPath('containerd')!, [
        '--config',
        join(dir, 'containerd.toml'),
        '--log-level',
        'info',
      ]);
      await rk.waitFor('containerd', 30_000, async () => {
        await rk.ctr('version');
        return true;
      });
      await rk.ctr('images', 'import', '--all-platforms', PAUSE_TAR);

      // ---- the kubelet's identity: system:node:<name> in system:nodes, also its serving certificate ----
      const ssl = (...args: string[]) => exec('openssl', args, { cwd: dir });
      await writeFile(
        join(dir, 'kubelet.ext'),
        `extendedKeyUsage=clientAuth,serverAuth\nsubjectAltName=IP:${ip},IP:127.0.0.1,DNS:${nodeName}\n`,
      );
      await ssl('genrsa', '-out', 'kubelet.key', '2048');
      await ssl(
        'req',
        '-new',
        '-key',
        'kubelet.key',
        '-subj',
        `/O=system:nodes/CN=system:node:${nodeName}`,
        '-out',
        'kubelet.csr',
      );
      await ssl(
        'x509',
        '-req',
        '-in',
        'kubelet.csr',
        '-CA',
        join(cp.dir, 'ca.crt'),
        '-CAkey',
        join(cp.dir, 'ca.key'),
        '-CAcreateserial',
        '-CAserial',
        join(dir, 'ca.srl'),
        '-days',
        '2',
        '-extfile',
        'kubelet.ext',
        '-out',
        'kubelet.crt',
      );
      await writeFile(
        join(dir, 'kubelet.kubeconfig'),
        `apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: { server: "${cp.server}", certificate-authority: "${cp.caFile}" }
users:
- name: ${nodeName}
  user: { client-certificate: "${join(dir, 'kubelet.crt')}", client-key: "${join(dir, 'kubelet.key')}" }
contexts:
- name: e2e
  context: { cluster: e2e, user: ${nodeName} }
current-context: e2e
`,
      );

      // ---- the kubelet ----
      for (const m of cgroupMounts()) await mkdir(join(m, cgroupRoot), { recursive: true }).catch(() => {});
      const [port, healthzPort] = [await freePort(), await freePort()];
      await writeFile(
        join(dir, 'kubelet.yaml'),
        `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: "${cp.caFile}" }
authorization: { mode: Webhook }
cgroupDriver: cgroupfs
cgroupRoot: ${cgroupRoot}
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://${socket}
registerNode: true
address: ${ip}
port: ${port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${healthzPort}
tlsCertFile: ${join(dir, 'kubelet.crt')}
tlsPrivateKeyFile: ${join(dir, 'kubelet.key')}
clusterDomain: cluster.local
clusterDNS: [10.96.0.10]
resolvConf: /etc/resolv.conf
podLogsDir: ${podLogsDir}
enforceNodeAllocatable: []
# A shared development disk: do not evict or garbage-collect images for disk usage.
evictionHard: { memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%" }
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
`,
      );
      procs.kubelet = Proc.start(dir, 'kubelet', toolPath('kubelet'), [
        `--config=${join(dir, 'kubelet.yaml')}`,
        `--kubeconfig=${join(dir, 'kubelet.kubeconfig')}`,
        `--root-dir=${join(dir, 'kubelet')}`,
        `--hostname-override=${nodeName}`,
        `--node-ip=${ip}`,
        '--v=1',
      ]);
      await rk.waitFor(`Node ${nodeName} Ready`, o.readyTimeoutMs ?? 90_000, async () => rk.nodeReady());
      return rk;
    } catch (e) {
      const logs = rk.logs(2000);
      await rk.stop().catch(() => {});
      throw new Error(`the real kubelet did not start: ${(e as Error).message}\n${logs}`);
    }
  }

  /** `ctr -a <socket> -n k8s.io <args>` (the CRI's namespace). */
  async ctr(...args: string[]): Promise<string> {
    const r = await exec(onPath('ctr')!, ['-a', this.socket, '-n', 'k8s.io', ...args], { maxBuffer: 16 << 20 });
    return r.stdout;
  }

  /** Copies an image from the Docker engine into this containerd (`docker save | ctr images import -`). */
  async importDockerImage(ref: string): Promise<void> {
    await exec(
      'bash',
      [
        '-c',
        'set -euo pipefail; docker save "$1" | "$2" -a "$3" -n k8s.io images import -',
        '_',
        ref,
        onPath('ctr')!,
        this.socket,
      ],
      { maxBuffer: 16 << 20, timeout: 300_000 },
    );
  }

  /** The image references this containerd holds. */
  async images(): Promise<string[]> {
    return (await this.ctr('images', 'ls', '-q')).split('\n').filter((l) => l && !l.startsWith('sha256:'));
  }

  /** Task (container process) ids and statuses in this containerd. */
  async tasks(): Promise<{ id: string; status: string }[]> {
    return (await this.ctr('tasks', 'ls'))
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length >= 3)
      .map((f) => ({ id: f[0]!, status: f[2]! }));
  }

  async nodeReady(): Promise<boolean> {
    const node = await this.cp.core().readNode({ name: this.nodeName });
    return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  }

  /** The last lines containerd and the kubelet wrote, for failure messages. */
  logs(chars = 1500): string {
    return Object.values(this.procs)
      .filter((p): p is Proc => !!p)
      .map((p) => `--- ${p.name}${p.running ? '' : ' (exited)'} (${p.logFile}):\n${p.output.slice(-chars)}`)
      .join('\n');
  }

  crashed(): string | undefined {
    const dead = Object.values(this.procs).find((p) => p && !p.running);
    return dead ? `${dead.name} exited:\n${dead.output.slice(-3000)}` : undefined;
  }

  /**
   * Stops the kubelet, then every container (SIGKILL to the tasks, then their shims), then containerd; unmounts what
   * they left under the folder, removes the cgroups, the CNI bridge and the folder. The Node object stays (the control
   * plane's node lifecycle controller marks it NotReady); delete it through the API where that matters.
   */
  async stop(): Promise<void> {
    await this.procs.kubelet?.stop();
    if (this.procs.containerd?.running) {
      for (const t of await this.tasks().catch(() => [])) {
        await this.ctr('tasks', 'kill', '-s', 'SIGKILL', t.id).catch(() => {});
      }
      for (let i = 0; i < 20 && (await this.tasks().catch(() => [])).some((t) => t.status === 'RUNNING'); i++)
        await new Promise((r) => setTimeout(r, 250));
      for (const t of await this.tasks().catch(() => [])) await this.ctr('tasks', 'delete', '-f', t.id).catch(() => {});
    }
    // The runc shims outlive containerd: end those serving this instance (their command line names its socket).
    for (const pid of this.shimPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    await this.procs.containerd?.stop();
    await this.unmountUnder(this.dir);
    await this.removeCgroups();
    await exec('ip', ['link', 'delete', this.bridge]).catch(() => {});
    await rm(this.dir, { recursive: true, force: true }).catch(() => {});
  }

  private shimPids(): number[] {
    const pids: number[] = [];
    for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
      try {
        const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
        if (cmd.includes('containerd-shim') && cmd.includes(this.socket)) pids.push(Number(p));
      } catch {}
    }
    return pids;
  }

  private async unmountUnder(root: string): Promise<void> {
    let info = '';
    try {
      info = await readFile('/proc/self/mountinfo', 'utf8');
    } catch {
      return;
    }
    const points = info
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m): m is string => !!m && (m === root || m.startsWith(`${root}/`)))
      .sort((a, b) => b.length - a.length);
    for (const m of points) await exec('umount', ['-l', m]).catch(() => {});
  }

  /** rmdir, deepest first, of the kubelet's cgroup root in every hierarchy (empty once the containers are gone). */
  private async removeCgroups(): Promise<void> {
    const walk = (d: string): string[] => {
      let subs: string[] = [];
      try {
        subs = readdirSync(d, { withFileTypes: true })
          .filter((e) => e.isDirectory())
          .flatMap((e) => walk(join(d, e.name)));
      } catch {}
      return [...subs, d];
    };
    for (const m of cgroupMounts()) {
      const top = join(m, this.cgroupRoot);
      if (!existsSync(top)) continue;
      for (const d of walk(top)) await rmdir(d).catch(() => {});
    }
  }

  private async waitFor(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      const dead = this.crashed();
      if (dead) throw new Error(`waiting for ${what}: ${dead}`);
      try {
        if (await probe()) return;
      } catch (e) {
        last = (e as Error).message;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${last.slice(0, 300)})` : ''}`);
  }
}
