import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { LlmHost, LlmHostInfo } from '@fednano/core';
import { createLogger } from '@fednano/service-kit';
import {
  type CertificateAuthority,
  createCertificateAuthority,
  GrpcLlmHost,
  type grpc,
  type IssuedCertificate,
  identityUri,
  issueCertificate,
  parseIdentityUri,
  serverCredentials,
} from '@fednano/wire';
import { RevocationList } from './authorization.js';
import { llmHostMetrics } from './metrics.js';
import { createLlmHostServer } from './server.js';

// The llm-host's certificate authorization over real gRPC and TLS, with certificates from the federation PKI the
// operator uses. The model is a stand-in: what is under test is who gets an answer.
const info: LlmHostInfo = { modelId: 'stub', dModel: 2, contextLength: 3, vocabSize: 5 };
const stub: LlmHost = {
  info: async () => info,
  forwardBackward: async (r) => ({
    sampleLoss: new Float32Array(r.batch).fill(1),
    gradInputsEmbeds: new Float32Array(r.inputsEmbeds.length),
  }),
  score: async (r) => ({ sampleLoss: new Float32Array(r.batch), logits: new Float32Array(r.batch * 5) }),
  close: async () => {},
} as LlmHost;
const fed = { namespace: 'team', federation: 'alpha' };
const request = {
  batch: 1,
  inputsEmbeds: new Float32Array(6),
  targets: new BigInt64Array(3),
  lossWeights: new Float32Array([1]),
};

let dir: string;
let ca: CertificateAuthority;
let server: grpc.Server;
let address: string;
let revokedFile: string;
const metrics = llmHostMetrics();
const issued: Record<string, IssuedCertificate> = {};
const silentLog = createLogger('llm-host-test');
silentLog.level = 'silent';

async function writeIdentity(name: string, cert: { cert: string; key: string }, caPem = ca.cert) {
  await writeFile(join(dir, `${name}.crt`), cert.cert);
  await writeFile(join(dir, `${name}.key`), cert.key);
  await writeFile(join(dir, `${name}-ca.crt`), caPem);
  return { ca: join(dir, `${name}-ca.crt`), cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

/** A client that gives up at once, so a refused handshake shows as an error instead of minutes of retries. */
async function clientAs(name: string, clientId?: string, caPem?: string) {
  const tls = issued[name] ? await writeIdentity(name, issued[name]!, caPem) : { ca: join(dir, 'server-ca.crt') };
  return new GrpcLlmHost(address, {
    tls,
    clientId: clientId ?? name.replace(/-.*/, ''),
    deadlineMs: 5000,
    retry: { budgetMs: 0 },
  });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fednano-authz-'));
  ca = await createCertificateAuthority(fed);
  const rogue = await createCertificateAuthority(fed); // same names, another key: not trusted
  const otherFed = await createCertificateAuthority({ namespace: 'team', federation: 'beta' });
  const host = await issueCertificate(ca, { ...fed, role: 'llm-host' }, { dnsNames: ['localhost'] });
  issued.a1 = await issueCertificate(ca, { ...fed, role: 'client', client: 'a1' });
  issued.a2 = await issueCertificate(ca, { ...fed, role: 'client', client: 'a2' });
  issued['a1-rogue'] = await issueCertificate(rogue, { ...fed, role: 'client', client: 'a1' });
  // Signed by this federation's CA but naming another federation (a mis-issued or replayed identity).
  issued['b1-crossfed'] = await issueCertificate(ca, {
    namespace: 'team',
    federation: 'beta',
    role: 'client',
    client: 'b1',
  });
  issued['b1-otherca'] = await issueCertificate(otherFed, {
    namespace: 'team',
    federation: 'beta',
    role: 'client',
    client: 'b1',
  });
  issued['a1-expired'] = await issueCertificate(
    ca,
    { ...fed, role: 'client', client: 'a1' },
    { notBefore: new Date(Date.now() - 7_200_000), notAfter: new Date(Date.now() - 3_600_000) },
  );
  issued['host-as-client'] = await issueCertificate(ca, { ...fed, role: 'llm-host' });
  revokedFile = join(dir, 'revoked.txt');
  await writeFile(revokedFile, '# revoked serials\n');
  const serverFiles = await writeIdentity('server', host);
  server = createLlmHostServer({
    host: stub,
    info,
    maxBatch: 8,
    maxMessageBytes: 1 << 20,
    metrics,
    log: silentLog,
    authorization: { federation: fed, revoked: new RevocationList(revokedFile, 0) },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', serverCredentials(serverFiles), (e, p) => (e ? reject(e) : resolve(p))),
  );
  address = `localhost:${port}`;
});

after(async () => {
  server?.forceShutdown();
  await rm(dir, { recursive: true, force: true });
});

test('identity URIs round-trip and nothing else parses as one', () => {
  const id = { ...fed, role: 'client' as const, client: 'a1' };
  assert.equal(identityUri(id), 'spiffe://fednano.io/ns/team/federation/alpha/client/a1');
  assert.deepEqual(parseIdentityUri(identityUri(id)), id);
  assert.deepEqual(parseIdentityUri(identityUri({ ...fed, role: 'llm-host' })), { ...fed, role: 'llm-host' });
  for (const bad of [
    'spiffe://evil.io/ns/team/federation/alpha/client/a1',
    'https://x',
    'spiffe://fednano.io/ns/team/federation/alpha/client/a1/x',
  ])
    assert.equal(parseIdentityUri(bad), undefined, bad);
});

test('a client of this federation with a valid certificate is served, as itself', async () => {
  const a1 = await clientAs('a1');
  assert.equal((await a1.forwardBackward(request)).sampleLoss[0], 1);
  assert.equal((await a1.info()).modelId, 'stub');
});

const TLS_REFUSED = /UNAVAILABLE: no TLS connection: .*client certificate/;

test('refusals: no certificate, wrong CA, expired, other federation, non-client role, claimed identity', async () => {
  const refusals: [string, GrpcLlmHost, RegExp][] = [
    // Refused by the TLS handshake itself: the chain (CA), the validity period and the key usage are TLS's to check.
    ['no certificate', await clientAs('none'), TLS_REFUSED],
    ['wrong CA', await clientAs('a1-rogue'), TLS_REFUSED],
    ['expired', await clientAs('a1-expired'), TLS_REFUSED],
    ['other federation, other CA', await clientAs('b1-otherca', 'b1'), TLS_REFUSED],
    ['llm-host certificate (serverAuth only) as a client', await clientAs('host-as-client', 'a1'), TLS_REFUSED],
    // Refused by authorization, with a status that says why.
    [
      'other federation, this CA',
      await clientAs('b1-crossfed', 'b1'),
      /PERMISSION_DENIED: the certificate is for federation team\/beta; this llm-host serves team\/alpha/,
    ],
    [
      'a1 claiming to be a2',
      await clientAs('a1', 'a2'),
      /PERMISSION_DENIED: the request says client_id 'a2' but the certificate is client 'a1'/,
    ],
  ];
  for (const [what, client, message] of refusals) await assert.rejects(client.forwardBackward(request), message, what);
  const refused = await metrics.registry.getSingleMetricAsString('fednano_llmhost_requests_refused_total');
  assert.match(refused, /reason="other-federation"} 1/);
  assert.match(refused, /reason="client-mismatch"} 1/);
});

test('a revoked certificate is refused as soon as the list names it, on an open connection too', async () => {
  const a2 = await clientAs('a2');
  await a2.forwardBackward(request);
  await writeFile(revokedFile, `# revoked serials\n${issued.a2!.serial.toLowerCase()}\n`);
  await assert.rejects(a2.forwardBackward(request), /certificate of client 'a2' \(serial [0-9A-F]+\) is revoked/);
  const a1 = await clientAs('a1');
  await a1.forwardBackward(request); // others are unaffected
});
