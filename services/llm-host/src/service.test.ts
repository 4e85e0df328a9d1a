import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { InProcessLlmHost } from '@fednano/core';
import { loadModelFolder } from '@fednano/model';
import { freePort, httpStatus, httpText, ServiceProcess } from '@fednano/service-kit';
import { GrpcLlmHost, type TlsFiles } from '@fednano/wire';

// The llm-host as a process, as it is deployed: gRPC answers, errors, limits, TLS, health, metrics, SIGTERM drain.
const ENTRY = fileURLToPath(new URL('../bin/llm-host.mjs', import.meta.url));
const MODEL = 'models/reference';
const folder = await loadModelFolder(MODEL);
const { dModel: D, contextLength: T } = folder.manifest.config;

async function startHost(args: string[] = []) {
  const port = await freePort();
  const ops = await freePort();
  const p = ServiceProcess.start({
    name: 'llm-host',
    entry: ENTRY,
    args: ['--model', MODEL, '--host', '127.0.0.1', '--port', String(port), '--ops-port', String(ops), ...args],
  });
  return { p, port, ops, address: `127.0.0.1:${port}` };
}

function request(batch: number, seed = 1) {
  const inputsEmbeds = Float32Array.from({ length: batch * T * D }, (_, i) => Math.sin(i * 0.37 + seed) * 0.5);
  const targets = BigInt64Array.from({ length: batch * T }, (_, i) =>
    i % T < 16 ? -100n : BigInt((i * 7 + seed) % 50),
  );
  return { batch, inputsEmbeds, targets, lossWeights: new Float32Array(batch).fill(0.1) };
}

let host: Awaited<ReturnType<typeof startHost>>;
let certs: string;
before(async () => {
  host = await startHost(['--max-message-bytes', String(2 * 2 ** 20)]);
  await host.p.waitReady(host.ops);
  certs = await mkdtemp(join(tmpdir(), 'fednano-certs-'));
  makeCertificates(certs);
});
after(async () => {
  await host?.p.stop();
  await rm(certs, { recursive: true, force: true });
});

test('ForwardBackward and Score over gRPC equal the in-process host; Info describes the model', async () => {
  const client = new GrpcLlmHost(host.address);
  const local = await InProcessLlmHost.create(
    { modelId: 'x', dModel: D, contextLength: T, vocabSize: folder.manifest.config.vocabSize },
    { llm: folder.files.llm, llmVjp: folder.files.llm_vjp },
  );
  try {
    const info = await client.info();
    assert.deepEqual([info.dModel, info.contextLength], [D, T]);
    const req = request(3);
    const [remote, ref] = await Promise.all([client.forwardBackward(req), local.forwardBackward(request(3))]);
    for (let i = 0; i < ref.sampleLoss.length; i++)
      assert.ok(Math.abs(remote.sampleLoss[i]! - ref.sampleLoss[i]!) < 1e-4);
    let maxDiff = 0;
    for (let i = 0; i < ref.gradInputsEmbeds.length; i++)
      maxDiff = Math.max(maxDiff, Math.abs(remote.gradInputsEmbeds[i]! - ref.gradInputsEmbeds[i]!));
    assert.ok(maxDiff < 1e-6, `max gradient difference ${maxDiff}`);
    const score = await client.score({ ...request(2), positions: [20, 31] });
    assert.equal(score.logits.length, 2 * info.vocabSize);
  } finally {
    await client.close();
    await local.close();
  }
});

test('bad requests get INVALID_ARGUMENT with the reason, oversized ones RESOURCE_EXHAUSTED; neither is retried', async () => {
  const client = new GrpcLlmHost(host.address, { retry: { budgetMs: 2000 } });
  try {
    await client.info();
    const bad = request(2);
    bad.targets[17] = 999_999n;
    await assert.rejects(client.forwardBackward(bad), /ForwardBackward failed: .*target/);
    await assert.rejects(client.score({ ...request(1), positions: [40] }), /Score failed: .*position 40/);
    // 2 MiB limit on the server: 20 samples x 32 x 128 floats is 327 KB; 200 samples is 3.3 MB.
    await assert.rejects(client.forwardBackward(request(200)), /failed: .*(larger than max|Received message larger)/i);
    const metrics = await httpText(`http://127.0.0.1:${host.ops}/metrics`);
    assert.match(
      metrics,
      /fednano_llmhost_request_duration_seconds_count\{method="ForwardBackward",code="INVALID_ARGUMENT"\} 1/,
    );
  } finally {
    await client.close();
  }
});

test('health, readiness and Prometheus metrics on the ops port', async () => {
  assert.equal(await httpStatus(`http://127.0.0.1:${host.ops}/healthz`), 200);
  assert.equal(await httpStatus(`http://127.0.0.1:${host.ops}/readyz`), 200);
  const m = await httpText(`http://127.0.0.1:${host.ops}/metrics`);
  for (const name of [
    'fednano_llmhost_batch_size_samples_bucket',
    'fednano_llmhost_samples_total',
    'fednano_llmhost_queue_depth_samples',
    'fednano_llmhost_received_bytes_total',
    'fednano_llmhost_sent_bytes_total',
  ])
    assert.ok(m.includes(name), `${name} is exported`);
});

test('mutual TLS: a client with a certificate from the CA is served; one without, or from another CA, is refused', async () => {
  const h = await startHost([
    '--tls-cert',
    join(certs, 'server.pem'),
    '--tls-key',
    join(certs, 'server.key'),
    '--tls-client-ca',
    join(certs, 'ca.pem'),
  ]);
  try {
    await h.p.waitReady(h.ops);
    const connect = (tls: TlsFiles) => new GrpcLlmHost(`localhost:${h.port}`, { tls, retry: { budgetMs: 1500 } });
    const good = connect({
      ca: join(certs, 'ca.pem'),
      cert: join(certs, 'client.pem'),
      key: join(certs, 'client.key'),
    });
    assert.equal((await good.info()).dModel, D);
    await good.close();
    const noCert = connect({ ca: join(certs, 'ca.pem') });
    await assert.rejects(noCert.info(), /Info failed/);
    await noCert.close();
    const wrongCa = connect({
      ca: join(certs, 'ca.pem'),
      cert: join(certs, 'rogue.pem'),
      key: join(certs, 'rogue.key'),
    });
    await assert.rejects(wrongCa.info(), /Info failed/);
    await wrongCa.close();
  } finally {
    await h.p.stop();
  }
});

test('SIGTERM drains: a request in flight is answered, then the process exits 0', async () => {
  const h = await startHost(['--max-delay-ms', '300']);
  await h.p.waitReady(h.ops);
  const client = new GrpcLlmHost(h.address, { retry: { budgetMs: 1000 } });
  await client.info();
  const inFlight = client.forwardBackward(request(4));
  await new Promise((r) => setTimeout(r, 100)); // queued, waiting out the batching delay
  h.p.signal('SIGTERM');
  const r = await inFlight;
  assert.equal(r.sampleLoss.length, 4);
  assert.deepEqual(await h.p.exited, { code: 0, signal: null });
  await client.close();
});

test('configuring CUDA where it is absent fails at start with a clear message; bad flags exit 2', async () => {
  const cuda = await startHost(['--execution-provider', 'cuda']);
  const { code } = await cuda.p.exited;
  if (code === 1) assert.match(cuda.p.output, /CUDA execution provider is not available/);
  else await cuda.p.stop(); // a machine with CUDA: it started
  const bad = await startHost(['--max-batch', 'lots']);
  assert.equal((await bad.p.exited).code, 2);
  assert.match(bad.p.output, /--max-batch must be a number/);
});

/** A CA, a server certificate for localhost, a client certificate, and a client certificate from another CA. */
function makeCertificates(dir: string) {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  for (const ca of ['ca', 'rogue-ca']) {
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${ca}`,
      '-keyout',
      `${ca}.key`,
      '-out',
      `${ca}.pem`,
    );
  }
  const leaf = (name: string, ca: string, cn: string, ext: string) => {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
    execFileSync('sh', ['-c', `printf '%s' '${ext}' > ${name}.ext`], { cwd: dir });
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.pem`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.pem`,
    );
  };
  leaf('server', 'ca', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1');
  leaf('client', 'ca', 'client-0', 'extendedKeyUsage=clientAuth');
  leaf('rogue', 'rogue-ca', 'client-0', 'extendedKeyUsage=clientAuth');
}
