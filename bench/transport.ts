/**
 * npm run bench:transport [-- --quick]: what an adapter update costs on the wire, and how long it takes from
 * publish to an aggregated round.
 *
 * Bytes: one update of the reference adapter (rank 16, dModel 128: 4 tensors, 8192 parameters) in each encoding.
 * Raw tensor bytes = element count x element size of the encoding (float32 4, float16 2, int8 1), Fisher included
 * when sent. Wire bytes = what the client writes to its NATS socket for publishUpdate, computed from the protocol:
 *   `HPUB <subject> <reply> <hdrlen> <totlen>\r\n` + headers + payload + `\r\n`
 * with the headers as nats.js encodes them (`NATS/1.0\r\nNats-Msg-Id: <ns>/<fed>/<round>/<client>\r\n\r\n`) and the
 * JetStream reply inbox `_INBOX.<22-char nuid>.<8-char token>`. The computation is checked against the bytes a
 * counting TCP proxy sees between a client and the server for the same publishes. TCP/IP headers and the PubAck
 * coming back (reported separately, measured) are not counted.
 *
 * Latency: a round with one participant on the real aggregator process; from publishUpdate to the round's KV record
 * saying Aggregated (seen through a KV watch opened beforehand), median over the rounds. Baseline, same run,
 * alternating: a bare JetStream publish of the same bytes to an unaggregated subject of the same stream, until its
 * PubAck. By reference: a second nats-server with max_payload 32768, where a Fisher update (about 66 KB) goes
 * through the Object Store (publishUpdate reports byReference) to a Fisher-merging aggregator.
 *
 * Flags: --quick (10 rounds per latency series instead of 20).
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import {
  type AdapterWeights,
  adapterSha256,
  adapterShapes,
  encodeUpdate,
  initAdapters,
  type StrategySpec,
  type WireDType,
} from '@fednano/core';
import { SERVICE_ENTRIES } from '@fednano/local-cluster';
import { freePort, NatsServer, ServiceProcess } from '@fednano/service-kit';
import {
  adapterObject,
  connectNats,
  dedupeId,
  ensureStorage,
  type FederationRef,
  type FederationStorage,
  openRound,
  parseRoundDocument,
  publishUpdate,
  putAdapter,
  type RoundDocument,
  roundKey,
  updateSubject,
} from '@fednano/wire';
import { type JetStreamClient, jetstream } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { createInbox, MsgHdrsImpl, type NatsConnection } from '@nats-io/nats-core';
import { median, printResult, printTable, round } from './report.js';

const { values: flags } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const ROUNDS = flags.quick ? 10 : 20;
const D_MODEL = 128;
const ADAPTER = { rank: 16, alpha: 32 };
const shapes = adapterShapes(D_MODEL, ADAPTER.rank);
const PARAMS = Object.values(shapes).reduce((n, [r, c]) => n + r * c, 0);
const ELEMENT_BYTES: Record<WireDType, number> = { float32: 4, float16: 2, bfloat16: 2, int8: 1 };
const CLIENT = 'client-0';

function noise(seed: number, scale: number): () => number {
  let s = (seed * 2654435761) >>> 0;
  return () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return (s / 2 ** 32 - 0.5) * 2 * scale;
  };
}

const base = initAdapters(D_MODEL, ADAPTER, 3);
for (const [name, t] of base) if (name.endsWith('.B')) t.set(t.map(noise(5, 0.05)));
const baseSha = adapterSha256(base, shapes);
const trained: AdapterWeights = new Map([...base].map(([n, t]) => [n, Float32Array.from(t, (x) => x + 0.01 * x)]));
const fisher: AdapterWeights = new Map([...base].map(([n, t]) => [n, Float32Array.from(t, (x) => x * x + 1e-6)]));

function encode(f: FederationRef, roundIndex: number, dtype: WireDType, withFisher: boolean): Uint8Array {
  return encodeUpdate(
    {
      ...f,
      round: roundIndex,
      clientId: CLIENT,
      baseAdapterSha256: baseSha,
      sampleCount: 150,
      weights: trained,
      fisher: withFisher ? fisher : undefined,
      metrics: { loss: 1.234, steps: 15, seconds: 12.5, splitUpBytes: 31_457_280, splitDownBytes: 31_457_280 },
    },
    { shapes, dtype },
  );
}

/** Bytes of the HPUB that js.publish(subject, payload, { msgID }) writes, reply inbox included. */
function hpubBytes(subject: string, msgId: string, payloadBytes: number): number {
  const h = new MsgHdrsImpl(); // what headers() returns; encode() is what the client writes
  h.set('Nats-Msg-Id', msgId);
  const hdr = h.encode().length;
  const reply = `${createInbox()}.${'t'.repeat(8)}`; // the request mux inbox plus its 8-character request token
  return Buffer.byteLength(`HPUB ${subject} ${reply} ${hdr} ${hdr + payloadBytes}\r\n`) + hdr + payloadBytes + 2;
}

/** A TCP proxy that counts the bytes each way, to check the computed framing against what is really sent. */
class CountingProxy {
  up = 0;
  down = 0;
  private readonly sockets = new Set<Socket>();
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<CountingProxy> {
    const server = createServer();
    const port = await new Promise<number>((resolve) =>
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
    );
    const proxy = new CountingProxy(server, port);
    server.on('connection', (client) => {
      const upstream = netConnect(targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        proxy.sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => proxy.sockets.delete(s));
      }
      client.on('data', (b: Buffer) => {
        proxy.up += b.length;
        upstream.write(b);
      });
      upstream.on('data', (b: Buffer) => {
        proxy.down += b.length;
        client.write(b);
      });
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    return proxy;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A KV watch on one round's record, opened before the clock starts. */
async function watchRound(kv: KV, f: FederationRef, roundIndex: number) {
  const key = roundKey(f, roundIndex);
  const watch = await kv.watch({ key });
  const it = watch[Symbol.asyncIterator]();
  return {
    async until(done: (doc: RoundDocument) => boolean): Promise<RoundDocument> {
      for (;;) {
        const next = await it.next();
        if (next.done) throw new Error(`watch on ${key} ended`);
        const e = next.value;
        if (e.operation !== 'PUT' || e.value.length === 0) continue;
        const doc = parseRoundDocument(e.value, key);
        if (done(doc)) return doc;
      }
    },
    stop: () => watch.stop(),
  };
}

/** A nats-server, a client connection with the shared storage, and an aggregator process for one federation. */
async function startSetup(f: FederationRef, maxPayload?: number) {
  const nats = await NatsServer.start(maxPayload ? { maxPayload } : {});
  const nc = await connectNats({ servers: nats.url, name: 'bench-transport' });
  const storage = await ensureStorage(nc);
  const opsPort = await freePort();
  const aggregator = ServiceProcess.start({
    name: 'aggregator',
    entry: SERVICE_ENTRIES.aggregator,
    args: ['--nats', nats.url, '--namespace', f.namespace, '--federation', f.federation, '--ops-port', String(opsPort)],
    env: { FEDNANO_LOG_LEVEL: 'warn' },
  });
  await aggregator.waitReady(opsPort, 60_000);
  const object = adapterObject(f, 0);
  await putAdapter(storage.objects, object, base, shapes);
  return {
    nats,
    nc,
    js: jetstream(nc),
    storage,
    aggregator,
    baseAdapter: { object, sha256: baseSha },
    async stop() {
      await aggregator.stop();
      await nc.close();
      await nats.stop();
    },
  };
}

/** Opens round `r` for CLIENT, waits until the aggregator collects it, then times publish -> Aggregated. */
async function timedRound(
  s: {
    nc: NatsConnection;
    js: JetStreamClient;
    storage: FederationStorage;
    baseAdapter: { object: string; sha256: string };
  },
  f: FederationRef,
  r: number,
  strategy: StrategySpec,
  bytes: Uint8Array,
): Promise<{ ms: number; byReference: boolean }> {
  await openRound(s.storage.kv, {
    ...f,
    round: r,
    participants: [CLIENT],
    minClients: 1,
    deadline: new Date(Date.now() + 600_000).toISOString(),
    baseAdapter: s.baseAdapter,
    adapter: ADAPTER,
    dModel: D_MODEL,
    strategy,
    training: { steps: 15, batchSize: 16, learningRate: 0.003, optimizer: 'adamw', fisherSamples: 64 },
    seeds: { [CLIENT]: r },
    updateEncoding: 'float32',
  });
  const watch = await watchRound(s.storage.kv, f, r);
  try {
    await watch.until((d) => d.status.state !== 'Open');
    const t0 = performance.now();
    const { byReference } = await publishUpdate(s.nc, s.js, s.storage.uploads, f, r, CLIENT, bytes);
    const doc = await watch.until((d) => d.status.state === 'Aggregated' || d.status.state === 'Failed');
    const ms = performance.now() - t0;
    if (doc.status.state !== 'Aggregated')
      throw new Error(`round ${r} ${doc.status.state}: ${doc.status.message} ${JSON.stringify(doc.status.rejected)}`);
    return { ms, byReference };
  } finally {
    watch.stop();
  }
}

const load = loadavg()[0]!;
const result: Record<string, number> = {};

// ---- 1. bytes on the wire --------------------------------------------------------------------------------------
const sizes = { namespace: 'bench', federation: 'sizes' };
const VARIANTS: { label: string; dtype: WireDType; fisher: boolean; key: string }[] = [
  { label: 'float32', dtype: 'float32', fisher: false, key: 'f32' },
  { label: 'float32 + Fisher', dtype: 'float32', fisher: true, key: 'f32_fisher' },
  { label: 'float16', dtype: 'float16', fisher: false, key: 'f16' },
  { label: 'float16 + Fisher', dtype: 'float16', fisher: true, key: 'f16_fisher' },
  { label: 'int8', dtype: 'int8', fisher: false, key: 'int8' },
];
const sizeRows: (string | number)[][] = [];
const plain = await NatsServer.start();
try {
  const proxy = await CountingProxy.start(plain.port);
  const nc = await connectNats({ servers: `nats://127.0.0.1:${proxy.port}`, name: 'bench-transport-sizes' });
  const { uploads } = await ensureStorage(nc);
  const js = jetstream(nc);
  // One publish first, so that the request inbox subscription (sent once per connection) is not counted.
  await publishUpdate(nc, js, uploads, sizes, 9, CLIENT, encode(sizes, 9, 'float32', false));
  let overheadMax = 0;
  for (const [i, v] of VARIANTS.entries()) {
    const r = i + 1; // one round per variant: distinct message ids, so none is dropped as a duplicate
    const bytes = encode(sizes, r, v.dtype, v.fisher);
    const raw = PARAMS * ELEMENT_BYTES[v.dtype] * (v.fisher ? 2 : 1);
    const computed = hpubBytes(updateSubject(sizes, r, CLIENT), dedupeId(sizes, r, CLIENT), bytes.length);
    const [up0, down0] = [proxy.up, proxy.down];
    const { byReference } = await publishUpdate(nc, js, uploads, sizes, r, CLIENT, bytes);
    const measured = proxy.up - up0;
    const ack = proxy.down - down0;
    if (byReference) throw new Error(`${v.label} went by reference on a 1 MiB server`);
    const overhead = computed / raw - 1;
    overheadMax = Math.max(overheadMax, overhead);
    sizeRows.push([
      v.label,
      raw,
      bytes.length,
      computed - bytes.length,
      computed,
      measured,
      `${(100 * overhead).toFixed(2)}%`,
      `${((100 * computed) / (PARAMS * 4 * (v.fisher ? 2 : 1))).toFixed(1)}%`,
      ack,
    ]);
    result[`overhead_${v.key}`] = overhead;
    if (measured !== computed) result[`framing_mismatch_${v.key}`] = measured - computed;
  }
  result.overhead_max = overheadMax;
  await nc.close();
  await proxy.close();
} finally {
  await plain.stop();
}
printTable(
  [
    'encoding',
    'raw tensor B',
    'encoded B',
    'NATS framing B',
    'wire B (computed)',
    'wire B (proxy)',
    'overhead',
    'of float32 size',
    'PubAck B',
  ],
  sizeRows,
);
process.stdout.write(
  `one update of ${PARAMS} parameters (rank ${ADAPTER.rank}, dModel ${D_MODEL}), subject ${updateSubject(sizes, 1, CLIENT)}; ` +
    `overhead = wire / raw - 1 (target <= 5%); 'of float32 size' = wire / float32 raw bytes\n\n`,
);

// ---- 2. latency through the real aggregator, inline -----------------------------------------------------------
const inlineF = { namespace: 'bench', federation: 'transport' };
const fisherF = { namespace: 'bench', federation: 'transport-fisher' };
const baselineF = { namespace: 'bench', federation: 'baseline' };
const latencyRows: (string | number)[][] = [];
const a = await startSetup(inlineF);
const series = { puback: [] as number[], inline: [] as number[], inlineFisher: [] as number[] };
try {
  // A second aggregator on the same server for the Fisher series (one federation per aggregator).
  const fisherOps = await freePort();
  const fisherAggregator = ServiceProcess.start({
    name: 'aggregator (fisher)',
    entry: SERVICE_ENTRIES.aggregator,
    args: [
      '--nats',
      a.nats.url,
      '--namespace',
      'bench',
      '--federation',
      fisherF.federation,
      '--ops-port',
      String(fisherOps),
    ],
    env: { FEDNANO_LOG_LEVEL: 'warn' },
  });
  try {
    await fisherAggregator.waitReady(fisherOps, 60_000);
    const fisherBase = adapterObject(fisherF, 0);
    await putAdapter(a.storage.objects, fisherBase, base, shapes);
    const f32 = encode(baselineF, 1, 'float32', false);
    for (let i = 0; i < 3; i++) await a.js.publish(updateSubject(baselineF, 1, `warm-${i}`), f32); // warm-up
    for (let r = 1; r <= ROUNDS + 1; r++) {
      const bytes = encode(inlineF, r, 'float32', false);
      const withFisher = encode(fisherF, r, 'float32', true);
      const t0 = performance.now();
      await a.js.publish(updateSubject(baselineF, r, CLIENT), bytes, { msgID: dedupeId(baselineF, r, CLIENT) });
      const puback = performance.now() - t0;
      const inline = await timedRound(a, inlineF, r, { name: 'fedavg' }, bytes);
      const fisherRound = await timedRound(
        { ...a, baseAdapter: { object: fisherBase, sha256: baseSha } },
        fisherF,
        r,
        { name: 'fisher' },
        withFisher,
      );
      if (r === 1) continue; // the first round of each series is warm-up
      series.puback.push(puback);
      series.inline.push(inline.ms);
      series.inlineFisher.push(fisherRound.ms);
    }
  } finally {
    await fisherAggregator.stop();
  }
} finally {
  await a.stop();
}
const pubackMs = median(series.puback);
const inlineMs = median(series.inline);
const inlineFisherMs = median(series.inlineFisher);
latencyRows.push(['bare JetStream publish -> PubAck (float32 bytes)', 'inline', round(pubackMs, 2), 1]);
latencyRows.push([
  'publishUpdate -> Aggregated, float32, fedavg',
  'inline',
  round(inlineMs, 2),
  round(inlineMs / pubackMs, 1),
]);
latencyRows.push([
  'publishUpdate -> Aggregated, float32 + Fisher, fisher',
  'inline',
  round(inlineFisherMs, 2),
  round(inlineFisherMs / pubackMs, 1),
]);

// ---- 3. by reference: max_payload 32 KiB, a Fisher update through the Object Store --------------------------------
const refF = { namespace: 'bench', federation: 'transport-ref' };
const small = await startSetup(refF, 32_768);
const refSeries: number[] = [];
let refUpBytes = 0;
let refRawBytes = 0;
try {
  for (let r = 1; r <= ROUNDS + 1; r++) {
    const bytes = encode(refF, r, 'float32', true);
    const { ms, byReference } = await timedRound(small, refF, r, { name: 'fisher' }, bytes);
    if (!byReference) throw new Error(`a ${bytes.length}-byte update was sent inline with max_payload 32768`);
    if (r > 1) refSeries.push(ms);
  }
  // Bytes for one by-reference publish (object put: info lookup, chunks, metadata; then the reference message).
  const proxy = await CountingProxy.start(small.nats.port);
  const nc = await connectNats({ servers: `nats://127.0.0.1:${proxy.port}`, name: 'bench-transport-ref-bytes' });
  const { uploads } = await ensureStorage(nc);
  const js = jetstream(nc);
  const sizesRef = { namespace: 'bench', federation: 'sizes-ref' };
  await publishUpdate(nc, js, uploads, sizesRef, 9, CLIENT, encode(sizesRef, 9, 'float32', true)); // warm-up
  const bytes = encode(sizesRef, 1, 'float32', true);
  const up0 = proxy.up;
  await publishUpdate(nc, js, uploads, sizesRef, 1, CLIENT, bytes);
  refUpBytes = proxy.up - up0;
  refRawBytes = PARAMS * 4 * 2;
  await nc.close();
  await proxy.close();
} finally {
  await small.stop();
}
const refMs = median(refSeries);
latencyRows.push([
  'publishUpdate -> Aggregated, float32 + Fisher, fisher',
  'by reference (max_payload 32 KiB)',
  round(refMs, 2),
  round(refMs / pubackMs, 1),
]);
printTable(['path', 'transport', 'median ms', 'x PubAck'], latencyRows);
process.stdout.write(
  `${ROUNDS} rounds per series (plus one warm-up), one participant per round, series interleaved round by round; ` +
    `by reference: ${refUpBytes} bytes written by the client for one ${refRawBytes}-byte (raw) Fisher update ` +
    `(${(100 * (refUpBytes / refRawBytes - 1)).toFixed(1)}% overhead, measured by proxy); ` +
    `load average at start ${load.toFixed(2)}\n`,
);

result.latency_puback_ms = pubackMs;
result.latency_aggregated_ms = inlineMs;
result.aggregated_vs_puback = inlineMs / pubackMs;
result.latency_fisher_inline_ms = inlineFisherMs;
result.latency_fisher_byref_ms = refMs;
result.byref_vs_inline = refMs / inlineFisherMs;
result.byref_overhead = refUpBytes / refRawBytes - 1;
printResult(result);
