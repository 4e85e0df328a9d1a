import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort, httpStatus, httpText } from '@fednano/service-kit';
import { connectNats, GrpcLlmHost } from '@fednano/wire';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  buildAllImages,
  engineProblem,
  IMAGE_NAMES,
  type ImageName,
  imageRef,
  inspectImage,
} from './support/images.js';
import { type KubeApi, startKubeApi } from './support/kube-api/index.js';

/**
 * The images for real: builds every docker/ image with the engine that is here (classic builder, on the public base
 * images or the local stand-ins of scripts/base-images.sh) and runs each one as it runs in a cluster: as uid 65532,
 * on a read-only root filesystem (no tmpfs), all capabilities dropped. `--help`; /healthz, /readyz and /metrics of the
 * llm-host, the aggregator (against the NATS image) and the operator (against an emulated API server); one
 * ForwardBackward over gRPC answered by the llm-host container; the NATS image with JetStream accepting a client.
 * Sizes: what each image adds to its base, below a stated bound.
 */
const execFileAsync = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CRDS = [join(ROOT, 'crds/fednano.io_federations.yaml'), join(ROOT, 'crds/fednano.io_federationrounds.yaml')];
const NODE_IMAGES = ['operator', 'llm-host', 'aggregator', 'client-agent'] as const;
const MB = 1e6;
/** Most each image may add to its base (node:20-bookworm-slim, or debian:bookworm-slim for nats), in MB (1e6 bytes). */
const MAX_ADDED_MB: Record<ImageName, number> = {
  operator: 130,
  'llm-host': 100,
  // It scores each global adapter on a held-out set: the model, ONNX Runtime and the NanoEdge code, as a client.
  aggregator: 240,
  'client-agent': 240,
  nats: 20,
};
/** The flags every container runs with: what a restricted Pod security context gives. */
const LOCKED_DOWN = ['--read-only', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges'];

const skip = await engineProblem();
if (skip)
  process.stderr.write(
    `\n*** SKIPPED test/images.e2e.test.ts: ${skip}. This suite builds the images in docker/ and runs them (--help, /healthz, /metrics, a ForwardBackward over gRPC, NATS with JetStream); run it where a docker engine is. ***\n\n`,
  );

async function docker(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('docker', args, { encoding: 'utf8', timeout: 120_000 });
  return stdout.trim();
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, logsOf?: string) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) {
      const logs = logsOf ? await docker('logs', '--tail', '30', logsOf).catch((e) => String(e)) : '';
      throw new Error(`${what}: not within ${timeoutMs} ms${logs ? `; container log:\n${logs}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('images: build and run', { skip: skip ? `SKIPPED: ${skip}` : false, timeout: 30 * 60_000 }, () => {
  let refs: Record<ImageName, string>;
  const containers: string[] = [];
  const network = `fednano-images-${process.pid}`;
  let work: string;

  /** `docker run -d` with the locked-down flags; removed after the suite. */
  const start = async (...args: string[]): Promise<string> => {
    const id = await docker('run', '-d', ...LOCKED_DOWN, ...args);
    containers.push(id);
    return id;
  };
  /** The host port that a published container port was given (published on 127.0.0.1 only). */
  const hostPort = async (id: string, port: number): Promise<number> =>
    Number((await docker('port', id, `${port}/tcp`)).split('\n')[0]!.split(':').at(-1));
  const ready = (id: string, url: string) =>
    waitFor(`${url}`, async () => ((await httpStatus(url)) === 200 ? true : undefined), 90_000, id);

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'fednano-images-'));
    refs = await buildAllImages();
    await docker('network', 'create', network);
  });

  after(async () => {
    if (containers.length > 0) await docker('rm', '-f', ...containers).catch(() => {});
    await docker('network', 'rm', network).catch(() => {});
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('every image is tagged as the chart expects (fednano/<name>:<chart appVersion>)', () => {
    for (const name of IMAGE_NAMES) assert.equal(refs[name], imageRef(name));
    assert.equal(refs.operator, 'fednano/operator:0.1.0');
  });

  test('sizes: what each image adds to its base stays below its bound; all run as 65532:65532', async () => {
    const rows: string[] = [];
    for (const name of IMAGE_NAMES) {
      const facts = await inspectImage(refs[name]);
      const base = await inspectImage(
        name === 'nats'
          ? (process.env.DEBIAN_IMAGE ?? 'debian:bookworm-slim')
          : (process.env.NODE_IMAGE ?? 'node:20-bookworm-slim'),
      );
      const added = (facts.size - base.size) / MB;
      rows.push(
        `${name.padEnd(13)} ${(facts.size / MB).toFixed(0).padStart(4)} MB (base ${(base.size / MB).toFixed(0)} MB + ${added.toFixed(0)} MB; bound +${MAX_ADDED_MB[name]} MB)`,
      );
      assert.equal(facts.user, '65532:65532', `${name}: Config.User`);
      assert.ok(
        added <= MAX_ADDED_MB[name],
        `${name} adds ${added.toFixed(0)} MB to its base (bound ${MAX_ADDED_MB[name]})`,
      );
    }
    process.stderr.write(`images (docker image inspect .Size):\n  ${rows.join('\n  ')}\n`);
  });

  for (const name of NODE_IMAGES) {
    test(`${name}: --help exits 0 with the usage, on a read-only root filesystem`, async () => {
      const out = await docker('run', '--rm', ...LOCKED_DOWN, refs[name], '--help');
      assert.match(out, new RegExp(`^Usage: fednano-${name} \\[options\\]`));
      assert.match(out, /FEDNANO_/);
    });

    test(`${name}: compiled JavaScript only (no TypeScript sources, tsx or typescript in /app)`, async () => {
      const found = await docker(
        'run',
        '--rm',
        ...LOCKED_DOWN,
        '--entrypoint',
        'sh',
        refs[name],
        '-c',
        "find /app -name '*.ts' -not -path '*/node_modules/*'; ls -d /app/node_modules/tsx /app/node_modules/typescript 2>/dev/null; id -u; echo $NODE_OPTIONS",
      );
      assert.deepEqual(found.split('\n'), ['65532', '--conditions=fednano-dist']);
    });
  }

  test('nats: JetStream on, accepts a client, store on the /data volume', async () => {
    const id = await start('-p', '127.0.0.1::4222', '-p', '127.0.0.1::8222', refs.nats);
    const monitor = `http://127.0.0.1:${await hostPort(id, 8222)}`;
    await ready(id, `${monitor}/healthz?js-enabled-only=true`);
    const nc = await connectNats({ servers: `nats://127.0.0.1:${await hostPort(id, 4222)}`, name: 'images-e2e' });
    try {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.getAccountInfo();
      assert.equal(typeof info.limits, 'object');
      await jsm.streams.add({ name: 'IMAGES_E2E', subjects: ['images.e2e'] });
      await nc.request('images.e2e', 'hello').catch(() => undefined);
      const stream = await jsm.streams.info('IMAGES_E2E');
      assert.equal(stream.state.messages, 1, 'JetStream stored the message');
    } finally {
      await nc.close();
    }
    const jsz = JSON.parse(await httpText(`${monitor}/jsz`)) as { config?: { store_dir?: string } };
    assert.match(jsz.config?.store_dir ?? '', /^\/data/);
    assert.equal((await docker('exec', id, 'id', '-u')).trim(), '65532');
  });

  test('llm-host: /healthz, /readyz, /metrics; answers one ForwardBackward over gRPC; SIGTERM exits 0', async () => {
    const id = await start('-p', '127.0.0.1::9090', '-p', '127.0.0.1::50051', refs['llm-host']);
    const ops = `http://127.0.0.1:${await hostPort(id, 9090)}`;
    await ready(id, `${ops}/readyz`);
    assert.equal(await httpStatus(`${ops}/healthz`), 200);
    assert.match(await httpText(`${ops}/metrics`), /^fednano_llmhost_\w+/m);

    const host = new GrpcLlmHost(`127.0.0.1:${await hostPort(id, 50051)}`, {
      retry: { budgetMs: 0 },
      deadlineMs: 30_000,
    });
    try {
      const info = await host.info();
      assert.ok(info.dModel > 0 && info.contextLength > 0 && info.vocabSize > 0, JSON.stringify(info));
      const n = info.contextLength * info.dModel;
      const inputsEmbeds = new Float32Array(n).map((_, i) => Math.sin(i * 0.37) * 0.1);
      const targets = new BigInt64Array(info.contextLength).fill(-100n);
      for (let t = 0; t < Math.min(8, info.contextLength); t++) targets[t] = BigInt((t * 7 + 3) % info.vocabSize);
      const r = await host.forwardBackward({ batch: 1, inputsEmbeds, targets, lossWeights: new Float32Array([1]) });
      assert.equal(r.sampleLoss.length, 1);
      assert.ok(Number.isFinite(r.sampleLoss[0]) && r.sampleLoss[0]! > 0, `loss ${r.sampleLoss[0]}`);
      assert.equal(r.gradInputsEmbeds.length, n);
      assert.ok(r.gradInputsEmbeds.every(Number.isFinite));
      assert.ok(
        r.gradInputsEmbeds.some((g) => g !== 0),
        'a non-zero gradient',
      );
    } finally {
      await host.close();
    }
    assert.match(await httpText(`${ops}/metrics`), /^fednano_llmhost_samples_total(\{[^}]*\})? [1-9]/m);
    await docker('stop', '-t', '20', id);
    assert.equal(await docker('inspect', '-f', '{{.State.ExitCode}}', id), '0');
  });

  test('aggregator: against the NATS image, /healthz, /readyz and /metrics answer', async () => {
    await start('--network', network, '--network-alias', 'nats', refs.nats);
    const id = await start(
      '--network',
      network,
      '-p',
      '127.0.0.1::9090',
      refs.aggregator,
      '--nats',
      'nats://nats:4222',
      '--federation',
      'images-e2e',
    );
    const ops = `http://127.0.0.1:${await hostPort(id, 9090)}`;
    await ready(id, `${ops}/readyz`);
    assert.equal(await httpStatus(`${ops}/healthz`), 200);
    assert.match(await httpText(`${ops}/metrics`), /^fednano_aggregator_\w+/m);
  });

  test('operator: against an emulated API server and the NATS image, /healthz, /readyz and /metrics answer', async () => {
    // The operator's container shares the host's network, where the API server listens on loopback.
    const nats = await start('-p', '127.0.0.1::4222', refs.nats);
    const natsPort = await hostPort(nats, 4222);
    let api: KubeApi | undefined;
    try {
      api = await startKubeApi({ crds: CRDS });
      const kubeconfig = await api.writeKubeconfig(join(work, 'kubeconfig'));
      await chmod(kubeconfig, 0o644); // read by uid 65532 in the container
      const opsPort = await freePort();
      const id = await start(
        '--network',
        'host',
        '-v',
        `${kubeconfig}:/etc/fednano/kubeconfig:ro`,
        refs.operator,
        '--kubeconfig',
        '/etc/fednano/kubeconfig',
        '--nats',
        `nats://127.0.0.1:${natsPort}`,
        '--ops-port',
        String(opsPort),
      );
      const ops = `http://127.0.0.1:${opsPort}`;
      await ready(id, `${ops}/readyz`);
      assert.equal(await httpStatus(`${ops}/healthz`), 200);
      assert.match(await httpText(`${ops}/metrics`), /^fednano_operator_\w+/m);
      await docker('stop', '-t', '20', id);
      assert.equal(await docker('inspect', '-f', '{{.State.ExitCode}}', id), '0');
    } finally {
      await api?.close();
    }
  });
});
