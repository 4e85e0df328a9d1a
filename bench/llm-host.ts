/**
 * npm run bench:llm-host [-- --quick]: ForwardBackward throughput of the real llm-host service over gRPC, against
 * ONNX Runtime run directly on the same graph, in the same run.
 *
 * The llm-host runs as a child process (its production entry point, default flags: 1 session pair, 2 intra-op
 * threads, max-batch 32, max-delay 2 ms). C = 1, 8 and 32 concurrent GrpcLlmHost clients in this process each send
 * requests of 4 samples in a closed loop; the host batches them dynamically. The baseline is a WorkerSession on the
 * same llm_vjp.onnx with the same ORT settings (2 intra-op threads, default spinning) running batches of the size the
 * host can form: 4 samples for C = 1 and 32 samples for C = 8 and 32. Each gRPC window sits between two raw
 * windows and is compared with their mean, so that both sides of a ratio see the same machine state; medians over
 * the repetitions are reported. The host's mean batch size per C comes from the deltas of
 * `fednano_llmhost_batch_size_samples` on its /metrics, and CPU use from /proc (the host process) and
 * process.cpuUsage() (this process: the gRPC clients, or the raw session's worker thread).
 *
 * Flags: --quick (shorter windows, fewer repetitions), --model DIR (default models/reference).
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { SERVICE_ENTRIES } from '@fednano/local-cluster';
import { loadModelFolder } from '@fednano/model';
import { DType, WorkerSession } from '@fednano/onnx-graph';
import { freePort, httpText, ServiceProcess } from '@fednano/service-kit';
import { GrpcLlmHost } from '@fednano/wire';
import { median, printResult, printTable, round } from './report.js';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    model: { type: 'string', default: 'models/reference' },
  },
});
const reps = flags.quick ? 3 : 5;
const windowMs = flags.quick ? 750 : 1500;
const THREADS = 2;
const MAX_BATCH = 32;
const PER_CLIENT = 4;
const CLIENTS = [1, 8, 32];

const load0 = loadavg()[0]!;
const folder = await loadModelFolder(flags.model);
const { contextLength: t, dModel: d, vocabSize: vocab } = folder.manifest.config;

/** Deterministic pseudo-random inputs: small embeddings, in-vocabulary targets (a few ignored with -100). */
function makeRequest(batch: number, seed: number) {
  let s = seed * 2654435761;
  const next = () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return s / 2 ** 32;
  };
  const inputsEmbeds = new Float32Array(batch * t * d).map(() => (next() - 0.5) * 0.2);
  const targets = new BigInt64Array(batch * t).map((_, i) => (i % t < 4 ? -100n : BigInt(Math.floor(next() * vocab))));
  const lossWeights = new Float32Array(batch).fill(1 / batch);
  return { batch, inputsEmbeds, targets, lossWeights };
}

/** CPU seconds (user + system, all threads) of a process so far; /proc/<pid>/stat counts in 1/100 s. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
const selfCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

// ---- the service -------------------------------------------------------------------------------------------
const port = await freePort();
const opsPort = await freePort();
const host = ServiceProcess.start({
  name: 'llm-host',
  entry: SERVICE_ENTRIES.llmHost,
  args: [
    '--model',
    flags.model,
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--ops-port',
    String(opsPort),
    '--sessions',
    '1',
    '--threads',
    String(THREADS),
    '--max-batch',
    String(MAX_BATCH),
  ],
  env: { FEDNANO_LOG_LEVEL: 'warn' },
});
const clients: GrpcLlmHost[] = [];
let raw: WorkerSession | undefined;
try {
  await host.waitReady(opsPort, 120_000);
  raw = await WorkerSession.create(folder.files.llm_vjp, { intraOpThreads: THREADS });
  const session = raw;
  const hostPid = host.pid!;
  for (let i = 0; i < Math.max(...CLIENTS); i++)
    clients.push(new GrpcLlmHost(`127.0.0.1:${port}`, { clientId: `bench-${i}` }));
  const requests = clients.map((_, i) => makeRequest(PER_CLIENT, i + 1));
  const rawBatches = new Map([PER_CLIENT, MAX_BATCH].map((b) => [b, makeRequest(b, 1000 + b)]));

  /** Raw ORT: back-to-back runs of one batch for `ms`; samples/s and the cores this process used. */
  async function rawWindow(batch: number, ms: number): Promise<{ rate: number; cores: number }> {
    const r = rawBatches.get(batch)!;
    const feeds = {
      inputs_embeds: { dtype: DType.FLOAT, dims: [batch, t, d], data: r.inputsEmbeds },
      targets: { dtype: DType.INT64, dims: [batch, t], data: r.targets },
      sample_loss_grad: { dtype: DType.FLOAT, dims: [batch], data: r.lossWeights },
    };
    let samples = 0;
    const cpu0 = selfCpu();
    const start = performance.now();
    const end = start + ms;
    while (performance.now() < end) {
      await session.run(feeds);
      samples += batch;
    }
    const seconds = (performance.now() - start) / 1000;
    return { rate: samples / seconds, cores: (selfCpu() - cpu0) / seconds };
  }

  /** C clients in a closed loop for `ms`; samples/s, each request's latency, cores used by the host and the clients. */
  async function grpcWindow(
    c: number,
    ms: number,
  ): Promise<{ rate: number; latencies: number[]; hostCores: number; clientCores: number }> {
    let samples = 0;
    const latencies: number[] = [];
    const [host0, self0] = [cpuSeconds(hostPid), selfCpu()];
    const start = performance.now();
    const end = start + ms;
    await Promise.all(
      clients.slice(0, c).map(async (client, i) => {
        while (performance.now() < end) {
          const t0 = performance.now();
          const out = await client.forwardBackward(requests[i]!);
          latencies.push(performance.now() - t0);
          if (out.sampleLoss.length !== PER_CLIENT) throw new Error('wrong result size');
          samples += PER_CLIENT;
        }
      }),
    );
    const seconds = (performance.now() - start) / 1000;
    return {
      rate: samples / seconds,
      latencies,
      hostCores: (cpuSeconds(hostPid) - host0) / seconds,
      clientCores: (selfCpu() - self0) / seconds,
    };
  }

  /** sum and count of the host's forwardBackward batch-size histogram. */
  async function batchHistogram(): Promise<{ sum: number; count: number }> {
    const text = await httpText(`http://127.0.0.1:${opsPort}/metrics`);
    const value = (suffix: string) => {
      const m = text.match(
        new RegExp(`^fednano_llmhost_batch_size_samples_${suffix}\\{kind="forwardBackward"\\} (\\S+)$`, 'm'),
      );
      return m ? Number(m[1]) : 0;
    };
    return { sum: value('sum'), count: value('count') };
  }

  // Sanity: the service and the raw session compute the same thing.
  const check = requests[0]!;
  const viaGrpc = await clients[0]!.forwardBackward(check);
  const direct = await session.run({
    inputs_embeds: { dtype: DType.FLOAT, dims: [PER_CLIENT, t, d], data: check.inputsEmbeds },
    targets: { dtype: DType.INT64, dims: [PER_CLIENT, t], data: check.targets },
    sample_loss_grad: { dtype: DType.FLOAT, dims: [PER_CLIENT], data: check.lossWeights },
  });
  const directLoss = direct.sample_loss!.data as Float32Array;
  const maxDiff = Math.max(...viaGrpc.sampleLoss.map((x, i) => Math.abs(x - directLoss[i]!)));
  if (!(maxDiff < 1e-3)) throw new Error(`llm-host and raw ORT disagree: max |loss diff| ${maxDiff}`);

  // Warm-up: every shape once on both sides (ORT allocates per shape on first use).
  for (const b of rawBatches.keys()) await rawWindow(b, 300);
  for (const c of CLIENTS) await grpcWindow(c, 300);

  interface Series {
    raw: number[];
    rawCores: number[];
    grpc: number[];
    latency: number[];
    hostCores: number[];
    clientCores: number[];
    /** gRPC rate over the mean of the raw windows just before and after it. */
    ratio: number[];
    perCpu: number[];
    batchSum: number;
    batchCount: number;
  }
  const series = new Map<number, Series>(
    CLIENTS.map((c) => [
      c,
      {
        raw: [],
        rawCores: [],
        grpc: [],
        latency: [],
        hostCores: [],
        clientCores: [],
        ratio: [],
        perCpu: [],
        batchSum: 0,
        batchCount: 0,
      },
    ]),
  );
  const rawBatchFor = (c: number) => Math.min(c * PER_CLIENT, MAX_BATCH);
  // raw, gRPC, raw for each C in turn: each gRPC window is compared with the raw windows on either side of it, so
  // load from elsewhere on the machine hits both sides of a ratio alike.
  for (let r = 0; r < reps; r++) {
    for (const c of CLIENTS) {
      const b = rawBatchFor(c);
      const s = series.get(c)!;
      const before = await rawWindow(b, windowMs);
      const h0 = await batchHistogram();
      const g = await grpcWindow(c, windowMs);
      const h1 = await batchHistogram();
      const after = await rawWindow(b, windowMs);
      const rawRate = (before.rate + after.rate) / 2;
      const rawCpu = (before.cores + after.cores) / 2;
      s.raw.push(rawRate);
      s.rawCores.push(rawCpu);
      s.grpc.push(g.rate);
      s.latency.push(median(g.latencies));
      s.hostCores.push(g.hostCores);
      s.clientCores.push(g.clientCores);
      s.ratio.push(g.rate / rawRate);
      // Samples per CPU-second: the host's efficiency without the clients' share of this machine's cores.
      s.perCpu.push(g.rate / g.hostCores / (rawRate / rawCpu));
      s.batchSum += h1.sum - h0.sum;
      s.batchCount += h1.count - h0.count;
    }
    process.stderr.write(`repetition ${r + 1}/${reps} done\n`);
  }

  const rows: (string | number)[][] = [];
  const result: Record<string, number> = {};
  for (const c of CLIENTS) {
    const s = series.get(c)!;
    const meanBatch = s.batchCount ? s.batchSum / s.batchCount : 0;
    rows.push([
      `${c} x ${PER_CLIENT}`,
      round(median(s.grpc), 0),
      round(median(s.latency), 2),
      round(meanBatch, 1),
      round(median(s.hostCores), 2),
      round(median(s.clientCores), 2),
      rawBatchFor(c),
      round(median(s.raw), 0),
      round(median(s.rawCores), 2),
      round(median(s.ratio), 2),
      round(median(s.perCpu), 2),
    ]);
    result[`grpc_vs_raw_c${c}`] = median(s.ratio);
    result[`mean_batch_c${c}`] = meanBatch;
    result[`grpc_vs_raw_per_cpu_c${c}`] = median(s.perCpu);
  }
  result.raw_b4_samples_per_s = median(series.get(1)!.raw);
  result.raw_b32_samples_per_s = median(series.get(32)!.raw);
  result.grpc_c32_samples_per_s = median(series.get(32)!.grpc);
  printTable(
    [
      'clients x samples',
      'gRPC samples/s',
      'req p50 ms',
      'host mean batch',
      'host cores',
      'client cores',
      'raw batch',
      'raw samples/s',
      'raw cores',
      'gRPC/raw',
      'per CPU-s',
    ],
    rows,
  );
  process.stdout.write(
    `model ${flags.model} (t=${t}, d=${d}); ForwardBackward (llm_vjp.onnx); ${THREADS} intra-op threads both sides, ` +
      `1 session; ${reps} repetitions of raw/gRPC/raw ${windowMs} ms windows, medians (gRPC/raw: median of each gRPC ` +
      `window over its neighbouring raw windows); target: gRPC/raw >= 0.9 at 8+ clients.\n` +
      `cores = CPU time / wall time of the llm-host process, of this process's gRPC clients, of the raw session; ` +
      `per CPU-s = (gRPC samples per host CPU-second) / (raw samples per CPU-second). ` +
      `${cpus().length} cores here; load average ${load0.toFixed(2)} at start, ${loadavg()[0]!.toFixed(2)} at end\n`,
  );
  printResult(result);
} finally {
  for (const c of clients) await c.close();
  await raw?.close();
  await host.stop();
}
