/**
 * npm run bench:aggregator [-- --quick]: throughput and peak memory of the real aggregator service for rounds of
 * K = 10, 100 and 1000 updates.
 *
 * A private nats-server (JetStream) runs for the whole bench; each (strategy, K) gets a fresh aggregator process
 * (its production entry point) on its own federation, so the memory figures are per round. For each one: the round-0
 * adapter (rank 16, dModel 128, the reference model's shapes) is stored, round 1 is opened for K participants, and
 * once the aggregator has picked the round up (state Collecting) the peak-RSS counter of its process is reset
 * (`echo 5 > /proc/<pid>/clear_refs`). Then K pre-encoded float32 updates are published (publishUpdate, 64 in flight)
 * and the clock runs until the round's KV record says Aggregated. updates/s = K / (that time). Peak RSS = VmHWM of
 * the aggregator after the round, i.e. the largest resident set while it collected and merged; the table also shows
 * its RSS just before the first update (idle) and the growth above that. Every revision of the round's record is
 * watched, which gives the accept rate over the first and the last 20% of the updates and the record's final size
 * (the aggregator rewrites that record for every accepted update). The merged adapter is checked against the same
 * merge computed here.
 *
 * fedavg aggregates in a stream (memory should not grow with K); median keeps every update (it should).
 *
 * Flags: --quick (median only at the largest K), --ks 10,100,1000 (the K values).
 */
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import {
  type AdapterWeights,
  adapterSha256,
  adapterShapes,
  encodeUpdate,
  initAdapters,
  type StrategySpec,
} from '@fednano/core';
import { SERVICE_ENTRIES } from '@fednano/local-cluster';
import { freePort, httpText, NatsServer, ServiceProcess } from '@fednano/service-kit';
import {
  adapterObject,
  connectNats,
  ensureStorage,
  type FederationRef,
  getAdapter,
  isFinished,
  openRound,
  publishUpdate,
  putAdapter,
  type RoundSpec,
  waitForRound,
} from '@fednano/wire';
import { jetstream } from '@nats-io/jetstream';
import { printResult, printTable, round } from './report.js';

const { values: flags } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, ks: { type: 'string', default: '10,100,1000' } },
});
const KS = flags.ks.split(',').map(Number);
if (KS.some((k) => !Number.isInteger(k) || k < 1))
  throw new Error(`--ks must list positive integers, got '${flags.ks}'`);
const MEDIAN_KS = flags.quick ? KS.slice(-1) : KS;
const D_MODEL = 128;
const ADAPTER = { rank: 16, alpha: 32 };
const IN_FLIGHT = 64;
const shapes = adapterShapes(D_MODEL, ADAPTER.rank);

function procStatus(pid: number): { rss: number; hwm: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(text.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'))?.[1] ?? Number.NaN);
  return { rss: kb('VmRSS') * 1024, hwm: kb('VmHWM') * 1024 };
}

/** Deterministic noise in [-scale, scale). */
function noise(seed: number, scale: number): () => number {
  let s = (seed * 2654435761) >>> 0;
  return () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return (s / 2 ** 32 - 0.5) * 2 * scale;
  };
}

function clientWeights(base: AdapterWeights, k: number): AdapterWeights {
  const next = noise(k + 1, 0.01);
  return new Map([...base].map(([name, t]) => [name, Float32Array.from(t, (x) => x + next())]));
}

const MB = 2 ** 20;
const nats = await NatsServer.start();
const nc = await connectNats({ servers: nats.url, name: 'bench-aggregator' });
const js = jetstream(nc);
const { kv, objects, uploads } = await ensureStorage(nc);

interface Run {
  strategy: 'fedavg' | 'median';
  k: number;
  seconds: number;
  publishSeconds: number;
  idle: number;
  peak: number;
  /** Accept rate (updates/s) over the first and the last 20% of the round's updates. */
  firstRate: number;
  lastRate: number;
  /** Size of the round's KV record (JSON) when the round ended. */
  recordBytes: number;
  /** Heap + ArrayBuffers after a full GC with K-1 updates counted (what the open round retains). */
  retained: number;
}

async function runRound(strategy: Run['strategy'], k: number): Promise<Run> {
  const f: FederationRef = { namespace: 'bench', federation: `fed-${k}${strategy === 'fedavg' ? '' : `-${strategy}`}` };
  const base = initAdapters(D_MODEL, ADAPTER, 7);
  // B starts at zero; make the base non-trivial so that the merge does real arithmetic on every entry.
  for (const [name, t] of base) if (name.endsWith('.B')) t.set(t.map(noise(99, 0.05)));
  const baseSha = adapterSha256(base, shapes);
  // Everything a client would send, encoded before the clock starts; the expected result computed alongside.
  const updates: { client: string; bytes: Uint8Array }[] = [];
  const expected = new Map([...base].map(([name, t]) => [name, new Float64Array(t.length)]));
  const perCoordinate: Float32Array[][] = [];
  let totalSamples = 0;
  for (let i = 0; i < k; i++) {
    const client = `client-${i}`;
    const weights = clientWeights(base, i);
    const samples = 8 + (i % 9);
    totalSamples += samples;
    for (const [name, acc] of expected) {
      const w = weights.get(name)!;
      for (let j = 0; j < acc.length; j++) acc[j]! += samples * w[j]!;
    }
    if (strategy === 'median') perCoordinate.push([...weights.values()]);
    const bytes = encodeUpdate(
      {
        ...f,
        round: 1,
        clientId: client,
        baseAdapterSha256: baseSha,
        sampleCount: samples,
        weights,
        metrics: { loss: 1 + i / k, steps: 10, seconds: 1, splitUpBytes: 0, splitDownBytes: 0 },
      },
      { shapes },
    );
    updates.push({ client, bytes });
  }
  const names = [...base.keys()];
  const want: AdapterWeights = new Map();
  names.forEach((name, n) => {
    if (strategy === 'fedavg')
      want.set(
        name,
        Float32Array.from(expected.get(name)!, (x) => x / totalSamples),
      );
    else {
      const len = base.get(name)!.length;
      const out = new Float32Array(len);
      const values = new Float64Array(k);
      for (let j = 0; j < len; j++) {
        for (let c = 0; c < k; c++) values[c] = perCoordinate[c]![n]![j]!;
        values.sort();
        out[j] = k % 2 ? values[(k - 1) / 2]! : (values[k / 2 - 1]! + values[k / 2]!) / 2;
      }
      want.set(name, out);
    }
  });
  perCoordinate.length = 0;

  const opsPort = await freePort();
  const aggregator = ServiceProcess.start({
    name: 'aggregator',
    entry: SERVICE_ENTRIES.aggregator,
    args: ['--nats', nats.url, '--namespace', f.namespace, '--federation', f.federation, '--ops-port', String(opsPort)],
    // --expose-gc + FEDNANO_DEBUG_HEAP: /debug/heap on the ops port collects garbage, then reports the heap.
    env: { FEDNANO_LOG_LEVEL: 'warn', NODE_OPTIONS: '--expose-gc', FEDNANO_DEBUG_HEAP: '1' },
  });
  try {
    await aggregator.waitReady(opsPort, 60_000);
    const pid = aggregator.pid!;
    const object = adapterObject(f, 0);
    await putAdapter(objects, object, base, shapes);
    const spec: RoundSpec = {
      ...f,
      round: 1,
      participants: updates.map((u) => u.client),
      minClients: k,
      deadline: new Date(Date.now() + 3_600_000).toISOString(),
      baseAdapter: { object, sha256: baseSha },
      adapter: ADAPTER,
      dModel: D_MODEL,
      strategy: { name: strategy } as StrategySpec,
      training: { steps: 10, batchSize: 8, learningRate: 0.001, optimizer: 'adamw', fisherSamples: 0 },
      seeds: {},
      updateEncoding: 'float32',
    };
    await openRound(kv, spec);
    await waitForRound(kv, f, 1, (d) => d.status.state !== 'Open', { timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 300)); // let the aggregator settle after activating the round
    // VmHWM := current RSS. Where that is not allowed, fall back to sampling VmRSS (which can miss short peaks).
    const resetPeak = await writeFile(`/proc/${pid}/clear_refs`, '5').then(
      () => true,
      () => false,
    );
    const idle = procStatus(pid).rss;
    let sampled = idle;
    const sampler = setInterval(() => {
      try {
        sampled = Math.max(sampled, procStatus(pid).rss);
      } catch {
        // the process is gone (a failed run); the error is reported by the caller
      }
    }, 10);
    sampler.unref();

    const start = performance.now();
    // Every revision of the round record: when each accepted update was recorded.
    const progress: { t: number; n: number }[] = [];
    const done = waitForRound(
      kv,
      f,
      1,
      (d) => {
        progress.push({ t: performance.now(), n: d.status.accepted.length });
        return isFinished(d.status.state);
      },
      { timeoutMs: 600_000 },
    );
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(IN_FLIGHT, k) }, async () => {
        while (next < updates.length - 1) {
          const u = updates[next++]!;
          await publishUpdate(nc, js, uploads, f, 1, u.client, u.bytes);
        }
      }),
    );
    // Retained memory mid-round: with K-1 updates counted and the round still open, collect garbage in the
    // aggregator and read its heap (what the round holds: sums for fedavg, every update for median). The probe's
    // time is left out of the round's time.
    const probeStart = performance.now();
    while (progress.at(-1)?.n === undefined || progress.at(-1)!.n < k - 1) await new Promise((r) => setTimeout(r, 5));
    const heap = JSON.parse(await httpText(`http://127.0.0.1:${opsPort}/debug/heap`)) as {
      heapUsed: number;
      arrayBuffers: number;
      gc: boolean;
    };
    if (!heap.gc) throw new Error('the aggregator did not collect garbage before the heap probe (--expose-gc missing)');
    const probeMs = performance.now() - probeStart;
    const last = updates.at(-1)!;
    await publishUpdate(nc, js, uploads, f, 1, last.client, last.bytes);
    const published = performance.now();
    const doc = await done;
    const seconds = (performance.now() - start - probeMs) / 1000;
    clearInterval(sampler);
    const peak = resetPeak ? procStatus(pid).hwm : Math.max(sampled, procStatus(pid).rss);
    if (!resetPeak) process.stderr.write('cannot reset VmHWM (clear_refs); peak RSS is sampled every 10 ms\n');
    if (doc.status.state !== 'Aggregated' || doc.status.accepted.length !== k)
      throw new Error(
        `round ${f.federation}: ${doc.status.state}, ${doc.status.accepted.length}/${k} accepted: ${doc.status.message ?? ''} ${JSON.stringify(doc.status.rejected.slice(0, 2))}`,
      );
    const result = await getAdapter(objects, doc.status.result!.object, shapes, doc.status.result!.sha256);
    let maxAbsError = 0;
    for (const [name, w] of want) {
      const got = result.get(name)!;
      for (let j = 0; j < w.length; j++) maxAbsError = Math.max(maxAbsError, Math.abs(got[j]! - w[j]!));
    }
    if (!(maxAbsError < 1e-5))
      throw new Error(`${strategy} K=${k}: result differs from the expected merge by ${maxAbsError}`);
    const reached = (n: number) => progress.find((p) => p.n >= n)!;
    const a = reached(Math.ceil(0.2 * k));
    const b = reached(Math.floor(0.8 * k));
    const end = reached(k);
    return {
      strategy,
      k,
      seconds,
      publishSeconds: (published - start) / 1000,
      idle,
      peak,
      firstRate: a.n / ((a.t - start) / 1000),
      lastRate: (end.n - b.n) / ((end.t - b.t) / 1000),
      recordBytes: Buffer.byteLength(JSON.stringify(doc)),
      retained: heap.heapUsed + heap.arrayBuffers,
    };
  } finally {
    await aggregator.stop();
  }
}

const load = loadavg()[0]!;
const runs: Run[] = [];
try {
  for (const k of KS) {
    runs.push(await runRound('fedavg', k));
    process.stderr.write(`fedavg K=${k} done\n`);
  }
  for (const k of MEDIAN_KS) {
    runs.push(await runRound('median', k));
    process.stderr.write(`median K=${k} done\n`);
  }
} finally {
  await nc.close();
  await nats.stop();
}

printTable(
  [
    'strategy',
    'K',
    'publish s',
    'publish->Aggregated s',
    'updates/s',
    'first 20% /s',
    'last 20% /s',
    'idle RSS MB',
    'peak RSS MB',
    'growth MB',
    'retained MB (K-1, after GC)',
    'record KB',
  ],
  runs.map((r) => [
    r.strategy,
    r.k,
    round(r.publishSeconds, 2),
    round(r.seconds, 2),
    round(r.k / r.seconds, 0),
    r.k >= 100 ? round(r.firstRate, 0) : '-',
    r.k >= 100 ? round(r.lastRate, 0) : '-',
    round(r.idle / MB, 1),
    round(r.peak / MB, 1),
    round((r.peak - r.idle) / MB, 1),
    round(r.retained / MB, 1),
    round(r.recordBytes / 1024, 1),
  ]),
);
const get = (s: Run['strategy'], k: number) => runs.find((r) => r.strategy === s && r.k === k);
const lo = get('fedavg', KS[0]!)!;
const hi = get('fedavg', KS.at(-1)!)!;
process.stdout.write(
  `fedavg is streaming, median buffers every update; float32 updates of rank ${ADAPTER.rank}, dModel ${D_MODEL} ` +
    `(${(4 * D_MODEL * ADAPTER.rank * 4) / 1024} KiB of tensors each); fresh aggregator process per row; ` +
    `results checked against a local merge; load average at start ${load.toFixed(2)} on this machine\n`,
);
const result: Record<string, number> = {};
for (const k of KS) result[`updates_per_s_k${k}`] = k / get('fedavg', k)!.seconds;
result[`peak_rss_ratio_k${hi.k}_vs_k${lo.k}`] = hi.peak / lo.peak;
result[`growth_mb_k${hi.k}`] = (hi.peak - hi.idle) / MB;
result[`growth_mb_k${lo.k}`] = (lo.peak - lo.idle) / MB;
result[`last_vs_first_rate_k${hi.k}`] = hi.lastRate / hi.firstRate;
result[`retained_ratio_k${hi.k}_vs_k${lo.k}`] = hi.retained / lo.retained;
const mLo = get('median', KS[0]!);
const mHi = get('median', KS.at(-1)!)!;
if (mLo) result[`median_peak_rss_ratio_k${mHi.k}_vs_k${mLo.k}`] = mHi.peak / mLo.peak;
result[`median_growth_mb_k${mHi.k}`] = (mHi.peak - mHi.idle) / MB;
result[`median_vs_fedavg_peak_k${hi.k}`] = mHi.peak / hi.peak;
result[`median_updates_per_s_k${mHi.k}`] = mHi.k / mHi.seconds;
if (mLo) result[`median_retained_ratio_k${mHi.k}_vs_k${mLo.k}`] = mHi.retained / mLo.retained;
printResult(result);
