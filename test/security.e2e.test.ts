import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, httpText, NatsServer, ServiceProcess } from '@fednano/service-kit';
import {
  connectNats,
  createNatsIdentity,
  GrpcLlmHost,
  natsAccountsConfig,
  openStorage,
  readRound,
  updateSubject,
} from '@fednano/wire';
import { CoreV1Api, CustomObjectsApi, KubeConfig, KubernetesObjectApi } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { edgeKubelet, federationManifest, waitFor, writeFixtureShards } from './support/emulated-federation.js';
import { type KubeApi, startKubeApi } from './support/kube-api/index.js';
import type { ProcessKubelet } from './support/process-kubelet.js';

/**
 * Security end to end: the operator issues every identity (NATS accounts and NKey users, a CA and certificates), the
 * NATS server loads the accounts the operator writes (the test plays the NATS chart's config reloader), the llm-host
 * runs mutual TLS and authorizes by certificate, and a round succeeds with all of it on. Then the refusals: an
 * anonymous NATS connection, a client publishing as another, a client certificate claiming another client, and a
 * client removed from the roster, whose certificate and NATS user stop working at once.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OPERATOR = join(ROOT, 'operator/bin/operator.mjs');
const CRDS = [join(ROOT, 'crds/fednano.io_federations.yaml'), join(ROOT, 'crds/fednano.io_federationrounds.yaml')];
const CLIENTS = ['client-0', 'client-1', 'client-2'];
const NS = 'default';
const ACCOUNTS_SECRET = 'fednano-nats-accounts';

let work: string;
let api: KubeApi;
let nats: NatsServer;
let kubelet: ProcessKubelet;
let operator: ServiceProcess;
let core: CoreV1Api;
let custom: CustomObjectsApi;
let objects: KubernetesObjectApi;
let reloader: NodeJS.Timeout | undefined;
let reloads = 0;
const federationYaml = (clients: string[]) =>
  federationManifest({
    name: 'sec',
    namespace: NS,
    clients,
    dataDir: join(work, 'data'),
    strategy: '{ name: fedavg }',
    training: '{ localSteps: 4, batchSize: 8, learningRate: 0.003, optimizer: adamw }',
    participation: '{ fraction: 1, minClients: 2 }',
  });

async function secretData(name: string): Promise<Record<string, string>> {
  const s = await core.readNamespacedSecret({ namespace: NS, name });
  return Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
}

const until = <T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 180_000) =>
  waitFor(what, get, ok, timeoutMs, () => `operator:\n${operator.output.slice(-3000)}`);

const fr = async (name: string) =>
  (await custom.getNamespacedCustomObject({
    group: 'fednano.io',
    version: 'v1alpha1',
    namespace: NS,
    plural: 'federationrounds',
    name,
  })) as { status?: { phase?: string; received?: number; clients?: { name: string; state: string }[] } };

/** Host files of a Secret, for a test client using that identity from outside the cluster. */
async function identityFiles(secret: string): Promise<Record<string, string>> {
  const data = await secretData(secret);
  const dir = await mkdtemp(join(work, `${secret}-`));
  const files: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) {
    files[k] = join(dir, k);
    await writeFile(files[k]!, v, { mode: 0o400 });
  }
  return files;
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'fednano-security-e2e-'));
  api = await startKubeApi({ crds: CRDS, deploymentController: true, schedulePods: true });
  const kubeconfig = await api.writeKubeconfig(join(work, 'kubeconfig'));
  // Authentication is on from the start: an account with one unused user until the operator writes its own.
  nats = await NatsServer.start({
    authConfig: natsAccountsConfig([
      {
        ref: { namespace: 'none', federation: 'none' },
        operator: createNatsIdentity(),
        aggregator: createNatsIdentity(),
        clients: {},
      },
    ]),
  });
  await writeFixtureShards(join(work, 'data'));
  const kc = new KubeConfig();
  kc.loadFromString(api.kubeconfig());
  core = kc.makeApiClient(CoreV1Api);
  custom = kc.makeApiClient(CustomObjectsApi);
  objects = KubernetesObjectApi.makeApiClient(kc);
  // The NATS chart's config reloader: when the accounts Secret changes, the server reloads it.
  let loaded = '';
  const reload = async () => {
    const conf = await secretData(ACCOUNTS_SECRET).then(
      (d) => d['accounts.conf'] ?? '',
      () => '',
    );
    if (conf && conf !== loaded) {
      loaded = conf;
      await nats.reloadAuth(conf);
      reloads++;
    }
  };
  reloader = setInterval(() => reload().catch(() => {}), 300);
  kubelet = edgeKubelet(kc, CLIENTS);
  await kubelet.start();
  const ops = await freePort();
  operator = ServiceProcess.start({
    name: 'operator',
    entry: OPERATOR,
    args: [
      ...['--kubeconfig', kubeconfig, '--nats', nats.url, '--ops-port', String(ops)],
      ...['--nats-accounts-secret', `${NS}/${ACCOUNTS_SECRET}`, '--mtls'],
      ...['--llm-host-image', 'fednano/llm-host:dev', '--aggregator-image', 'fednano/aggregator:dev'],
      ...['--client-agent-image', 'fednano/client-agent:dev'],
    ],
    logFile: join(work, 'operator.log'),
  });
  await operator.waitReady(ops);
  await objects.create(parse(federationYaml(CLIENTS)));
});

after(async () => {
  clearInterval(reloader);
  await operator?.stop();
  await kubelet?.stop();
  await api?.close();
  await nats?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

test('with operator-issued NATS users and mTLS on, a round runs to Succeeded with every update counted', async () => {
  await objects.create(
    parse(`
apiVersion: fednano.io/v1alpha1
kind: FederationRound
metadata: { name: sec-round-1, namespace: ${NS} }
spec: { federationRef: { name: sec }, round: 1, deadlineSeconds: 300 }
`),
  );
  const r = await until(
    'round 1 to succeed',
    () => fr('sec-round-1'),
    (x) => x.status?.phase === 'Succeeded',
  );
  assert.equal(r.status!.received, 3);
  assert.ok(reloads >= 1, 'the NATS server loaded the operator-written accounts');
  // The pods ran with the identities: the llm-host with mutual TLS for this federation, clients with their Secrets.
  const host = api
    .list<{ spec: { containers: { args: string[] }[] } }>('pods', { namespace: NS })
    .find((p) => p.spec.containers[0]!.args.includes('--tls-client-ca'));
  assert.ok(host, 'llm-host pod with --tls-client-ca');
  assert.ok(host!.spec.containers[0]!.args.join(' ').includes(`--federation ${NS}/sec`));
});

test('refusals with the issued identities: anonymous, impersonation over NATS, and over the llm-host', async () => {
  await assert.rejects(connectNats({ servers: nats.url, name: 'anonymous' }), /Authorization Violation/i);
  const c0 = await identityFiles('sec-client-0-identity');
  const nc = await connectNats({ servers: nats.url, name: 'client-0', credsFile: c0['nats.creds'] });
  try {
    // Its own federation's records are readable; publishing as client-1 is not allowed.
    const { kv } = await openStorage(nc);
    assert.equal((await readRound(kv, { namespace: NS, federation: 'sec' }, 1))?.doc.status.state, 'Aggregated');
    const denied = new Promise<string>((resolve) => {
      (async () => {
        for await (const s of nc.status()) if (s.type === 'error') resolve(String(s.error));
      })().catch(() => {});
    });
    nc.publish(updateSubject({ namespace: NS, federation: 'sec' }, 9, 'client-1'), 'forged');
    assert.match(
      await denied,
      /Permissions Violation for Publish to "fednano\.default\.sec\.round\.9\.update\.client-1"/,
    );
  } finally {
    await nc.close().catch(() => {});
  }
  const address = `127.0.0.1:${kubelet.servicePort(NS, 'sec-llm-host', 50051)}`;
  const tls = {
    ca: c0['ca.crt'],
    cert: c0['tls.crt'],
    key: c0['tls.key'],
    serverName: `sec-llm-host.${NS}.svc.cluster.local`,
  };
  const own = new GrpcLlmHost(address, { tls, clientId: 'client-0', retry: { budgetMs: 0 } });
  assert.equal((await own.info()).dModel > 0, true);
  const claiming = new GrpcLlmHost(address, { tls, clientId: 'client-1', retry: { budgetMs: 0 } });
  const { dModel, contextLength } = await own.info();
  const request = {
    batch: 1,
    inputsEmbeds: new Float32Array(contextLength * dModel),
    targets: new BigInt64Array(contextLength).fill(-100n),
    lossWeights: new Float32Array([1]),
  };
  await assert.rejects(
    claiming.forwardBackward(request),
    /PERMISSION_DENIED: .*client_id 'client-1' but the certificate is client 'client-0'/,
  );
});

test('a client removed from the roster: Secret deleted, certificate revoked at the running llm-host, NATS user gone', async () => {
  const c2 = await identityFiles('sec-client-2-identity');
  const address = `127.0.0.1:${kubelet.servicePort(NS, 'sec-llm-host', 50051)}`;
  const tls = {
    ca: c2['ca.crt'],
    cert: c2['tls.crt'],
    key: c2['tls.key'],
    serverName: `sec-llm-host.${NS}.svc.cluster.local`,
  };
  const llm = new GrpcLlmHost(address, { tls, clientId: 'client-2', retry: { budgetMs: 0 } });
  await llm.info(); // answered while client-2 is in the roster
  const before = reloads;
  const f = (await custom.getNamespacedCustomObject({
    group: 'fednano.io',
    version: 'v1alpha1',
    namespace: NS,
    plural: 'federations',
    name: 'sec',
  })) as { spec: { clients: { name: string }[] } };
  f.spec.clients = f.spec.clients.filter((c) => c.name !== 'client-2');
  await custom.replaceNamespacedCustomObject({
    group: 'fednano.io',
    version: 'v1alpha1',
    namespace: NS,
    plural: 'federations',
    name: 'sec',
    body: f,
  });
  await until(
    'client-2 identity Secret to be deleted',
    () =>
      secretData('sec-client-2-identity').then(
        () => false,
        () => true,
      ),
    (gone) => gone,
    30_000,
  );
  // The llm-host reads the revocation list from its (re-synced) Secret volume: the next call is refused.
  const refusal = await until(
    'the llm-host to refuse client-2',
    // A fresh client each time: GrpcLlmHost caches Info after its first answer.
    () =>
      new GrpcLlmHost(address, { tls, clientId: 'client-2', retry: { budgetMs: 0 } }).info().then(
        () => '',
        (e: Error) => e.message,
      ),
    (m) => /revoked/.test(m),
    30_000,
  );
  assert.match(refusal, /PERMISSION_DENIED: the certificate of client 'client-2' \(serial [0-9A-F]+\) is revoked/);
  await until(
    'NATS to reload the accounts',
    async () => reloads,
    (n) => n > before,
    30_000,
  );
  await assert.rejects(
    connectNats({ servers: nats.url, name: 'client-2', credsFile: c2['nats.creds'] }),
    /Authorization Violation/i,
  );
  const metrics = await httpText(
    `http://${address.replace(/:\d+$/, '')}:${kubelet.servicePort(NS, 'sec-llm-host', 9090)}/metrics`,
  );
  assert.match(metrics, /fednano_llmhost_requests_refused_total\{reason="revoked"\} [1-9]/);
  assert.match(metrics, /fednano_llmhost_requests_refused_total\{reason="client-mismatch"\} 1/);
});
