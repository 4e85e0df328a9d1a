import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '@fednano/service-kit';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { type Tool, toolPath, toolsProblem } from './tools.js';

/**
 * A real Kubernetes control plane on this machine's loopback: etcd, kube-apiserver (client-certificate and
 * service-account token authentication, Node + RBAC authorization, the default admission plugins plus
 * NodeRestriction), kube-controller-manager (every default controller: garbage collector, node lifecycle,
 * deployments, service-account tokens, root CA publisher, ...) and kube-scheduler, built from the pinned Go modules
 * by scripts/install-tools.sh. No kubelet: the project's kubelet (process-kubelet.ts) registers the Nodes.
 *
 *   const cp = await ControlPlane.start();
 *   cp.kubeconfigPath   // admin (system:masters), for kubectl and helm
 *   await cp.stop();
 */
const exec = promisify(execFile);

export const CONTROL_PLANE_TOOLS: readonly Tool[] = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
];

/** Why the control plane cannot start here, or undefined. */
export const controlPlaneProblem = (): string | undefined => toolsProblem(CONTROL_PLANE_TOOLS);

export interface ControlPlaneOptions {
  /** Address kube-apiserver listens on (default 127.0.0.1; 0.0.0.0 lets containers reach it). */
  bindAddress?: string;
  /** Extra IP addresses the serving certificate names (e.g. the docker bridge gateway). */
  extraIPs?: string[];
  /** Extra kube-apiserver / kube-controller-manager flags. */
  apiServerFlags?: string[];
  controllerManagerFlags?: string[];
}

/** The in-cluster service-account issuer and audience (what a projected token's `aud` names). */
export const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';
export const SERVICE_CIDR = '10.96.0.0/16';

/** One control-plane binary as a child process, its output in `<dir>/<name>.log`. */
class Component {
  readonly exited: Promise<number | null>;
  private tail = '';

  constructor(
    readonly name: string,
    private readonly child: ChildProcess,
    readonly logFile: string,
  ) {
    const log = createWriteStream(logFile, { flags: 'a' });
    const keep = (b: Buffer) => {
      this.tail = (this.tail + b.toString()).slice(-8192);
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

  static start(dir: string, name: string, bin: string, args: string[]): Component {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    // A test process that dies (a timeout, ^C) must not leave a control plane behind.
    const reap = () => child.kill('SIGKILL');
    process.once('exit', reap);
    child.once('exit', () => process.off('exit', reap));
    return new Component(name, child, join(dir, `${name}.log`));
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
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

interface KeyPair {
  cert: string;
  key: string;
}

/** The cluster's PKI, made with the openssl CLI: one CA for serving and client certificates, and the SA key. */
async function makePki(dir: string, serverIPs: string[]) {
  const ssl = (...args: string[]) => exec('openssl', args, { cwd: dir });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3', '-subj', '/CN=fednano-e2e-ca');
  const issue = async (name: string, subject: string, ext: string): Promise<KeyPair> => {
    await writeFile(join(dir, `${name}.ext`), ext);
    await ssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    await ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '3',
      '-out',
      `${name}.crt`,
      '-extfile',
      `${name}.ext`,
    );
    return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  };
  const client = 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n';
  const sans = [
    'DNS:localhost',
    'DNS:kubernetes',
    'DNS:kubernetes.default',
    'DNS:kubernetes.default.svc',
    'DNS:kubernetes.default.svc.cluster.local',
    ...serverIPs.map((ip) => `IP:${ip}`),
  ];
  const server = await issue(
    'apiserver',
    '/CN=kube-apiserver',
    `keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${sans.join(',')}\n`,
  );
  const admin = await issue('admin', '/O=system:masters/CN=fednano-e2e-admin', client);
  const controllerManager = await issue('controller-manager', '/CN=system:kube-controller-manager', client);
  const scheduler = await issue('scheduler', '/CN=system:kube-scheduler', client);
  await ssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key');
  await ssl('pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub');
  return {
    ca: { cert: join(dir, 'ca.crt'), key: join(dir, 'ca.key') },
    server,
    admin,
    controllerManager,
    scheduler,
    serviceAccount: { key: join(dir, 'sa.key'), pub: join(dir, 'sa.pub') },
  };
}

/** A kubeconfig file for one client certificate or bearer token. */
function kubeconfigYaml(server: string, caFile: string, user: { cert?: KeyPair; token?: string }): string {
  const auth = user.cert
    ? `client-certificate: ${user.cert.cert}\n    client-key: ${user.cert.key}`
    : `token: ${user.token}`;
  return `apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: ${server}
    certificate-authority: ${caFile}
users:
- name: e2e
  user:
    ${auth}
contexts:
- name: e2e
  context: { cluster: e2e, user: e2e, namespace: default }
current-context: e2e
`;
}

export class ControlPlane {
  private constructor(
    /** Working folder: PKI, kubeconfigs, etcd data, one log file per component. */
    readonly dir: string,
    /** https://127.0.0.1:<port> */
    readonly server: string,
    readonly caFile: string,
    /** Admin kubeconfig (system:masters): for kubectl, helm and the test itself. */
    readonly kubeconfigPath: string,
    private readonly components: Component[],
  ) {}

  static async start(o: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const problem = controlPlaneProblem();
    if (problem) throw new Error(problem);
    const dir = await mkdtemp(join(tmpdir(), 'fednano-control-plane-'));
    const components: Component[] = [];
    try {
      const bind = o.bindAddress ?? '127.0.0.1';
      const pki = await makePki(dir, ['127.0.0.1', '10.96.0.1', ...(o.extraIPs ?? [])]);
      const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
      const server = `https://127.0.0.1:${apiPort}`;
      const kubeconfigPath = join(dir, 'admin.kubeconfig');
      await writeFile(kubeconfigPath, kubeconfigYaml(server, pki.ca.cert, { cert: pki.admin }));
      await writeFile(
        join(dir, 'controller-manager.kubeconfig'),
        kubeconfigYaml(server, pki.ca.cert, { cert: pki.controllerManager }),
      );
      await writeFile(join(dir, 'scheduler.kubeconfig'), kubeconfigYaml(server, pki.ca.cert, { cert: pki.scheduler }));

      const etcd = Component.start(dir, 'etcd', toolPath('etcd'), [
        '--name=e2e',
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-cluster=e2e=http://127.0.0.1:${etcdPeer}`,
        // A throwaway test cluster: durability is not the point, and fsync dominates on a loaded disk.
        '--unsafe-no-fsync',
        '--log-level=warn',
      ]);
      components.push(etcd);

      const apiserver = Component.start(dir, 'kube-apiserver', toolPath('kube-apiserver'), [
        `--etcd-servers=http://127.0.0.1:${etcdClient}`,
        `--bind-address=${bind}`,
        `--secure-port=${apiPort}`,
        '--advertise-address=127.0.0.1',
        // The `kubernetes` Service would point at 127.0.0.1, which Endpoints may not name; nothing here uses it.
        '--endpoint-reconciler-type=none',
        `--tls-cert-file=${pki.server.cert}`,
        `--tls-private-key-file=${pki.server.key}`,
        `--client-ca-file=${pki.ca.cert}`,
        `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
        `--api-audiences=${SERVICE_ACCOUNT_ISSUER}`,
        `--service-account-key-file=${pki.serviceAccount.pub}`,
        `--service-account-signing-key-file=${pki.serviceAccount.key}`,
        '--authorization-mode=Node,RBAC',
        // On top of the default plugins (NamespaceLifecycle, LimitRanger, ServiceAccount, DefaultTolerationSeconds,
        // PodSecurity, Priority, ResourceQuota, the admission webhooks and policies, ...).
        '--enable-admission-plugins=NodeRestriction',
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        '--allow-privileged=true',
        '--profiling=false',
        '--v=1',
        ...(o.apiServerFlags ?? []),
      ]);
      components.push(apiserver);
      const cp = new ControlPlane(dir, server, pki.ca.cert, kubeconfigPath, components);
      await cp.waitHealthy('kube-apiserver', '/readyz', 60_000);

      const controllerManager = Component.start(dir, 'kube-controller-manager', toolPath('kube-controller-manager'), [
        `--kubeconfig=${join(dir, 'controller-manager.kubeconfig')}`,
        '--secure-port=0',
        '--leader-elect=false',
        '--use-service-account-credentials=true',
        `--service-account-private-key-file=${pki.serviceAccount.key}`,
        `--root-ca-file=${pki.ca.cert}`,
        `--cluster-signing-cert-file=${pki.ca.cert}`,
        `--cluster-signing-key-file=${pki.ca.key}`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        '--controllers=*',
        '--v=1',
        ...(o.controllerManagerFlags ?? []),
      ]);
      components.push(controllerManager);
      const scheduler = Component.start(dir, 'kube-scheduler', toolPath('kube-scheduler'), [
        `--kubeconfig=${join(dir, 'scheduler.kubeconfig')}`,
        '--secure-port=0',
        '--leader-elect=false',
        '--v=1',
      ]);
      components.push(scheduler);
      // The controller manager is working once its service-account controller has made `default` in `default`.
      await cp.waitFor('the default ServiceAccount (kube-controller-manager up)', 60_000, async () => {
        await cp.core().readNamespacedServiceAccount({ namespace: 'default', name: 'default' });
        return true;
      });
      return cp;
    } catch (e) {
      await Promise.all(components.map((c) => c.stop(2000)));
      const logs = components.map((c) => `--- ${c.name} (${c.logFile}):\n${c.output.slice(-1500)}`).join('\n');
      throw new Error(`the control plane did not start: ${(e as Error).message}\n${logs}`);
    }
  }

  /** An admin (system:masters) KubeConfig. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromFile(this.kubeconfigPath);
    return kc;
  }

  core(): CoreV1Api {
    return this.kubeConfig().makeApiClient(CoreV1Api);
  }

  /**
   * A kubeconfig authenticating as a ServiceAccount, with a token from the TokenRequest API (what a Pod's projected
   * token is): requests through it get exactly that account's RBAC.
   */
  async serviceAccountKubeconfig(namespace: string, name: string, file: string, expirationSeconds = 3600) {
    const r = await this.core().createNamespacedServiceAccountToken({
      namespace,
      name,
      body: { spec: { audiences: [SERVICE_ACCOUNT_ISSUER], expirationSeconds } },
    });
    const token = r.status?.token;
    if (!token) throw new Error(`no token issued for serviceaccount ${namespace}/${name}`);
    await writeFile(file, kubeconfigYaml(this.server, this.caFile, { token }));
    return file;
  }

  /** The last lines each component wrote, for failure messages. */
  logs(chars = 1500): string {
    return this.components
      .map((c) => `--- ${c.name}${c.running ? '' : ' (exited)'}:\n${c.output.slice(-chars)}`)
      .join('\n');
  }

  /** Whether each component is still running (a crash fails the suite with its log). */
  crashed(): string | undefined {
    const dead = this.components.find((c) => !c.running);
    return dead ? `${dead.name} exited:\n${dead.output.slice(-2000)}` : undefined;
  }

  async stop(): Promise<void> {
    // Reverse order: controllers first, etcd last.
    for (const c of [...this.components].reverse()) await c.stop();
    await rm(this.dir, { recursive: true, force: true });
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
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${last.slice(0, 300)})` : ''}`);
  }

  private async waitHealthy(what: string, path: string, timeoutMs: number): Promise<void> {
    const ca = await readFile(this.caFile);
    const cert = await readFile(join(this.dir, 'admin.crt'));
    const key = await readFile(join(this.dir, 'admin.key'));
    await this.waitFor(
      `${what} ${path}`,
      timeoutMs,
      async () => (await httpsStatus(`${this.server}${path}`, { ca, cert, key })) === 200,
    );
  }
}

function httpsStatus(url: string, tls: { ca: Buffer; cert: Buffer; key: Buffer }): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ...tls, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** For the folder of a component's logs when a suite wants to keep them (e.g. on CI failure). */
export async function keepLogs(cp: ControlPlane, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const name of ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'])
    await writeFile(join(to, `${name}.log`), await readFile(join(cp.dir, `${name}.log`)).catch(() => ''));
}
