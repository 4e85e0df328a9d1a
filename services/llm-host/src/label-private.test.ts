import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type AdapterWeights,
  type Example,
  type ForwardBackwardRequest,
  fisherDiagonal,
  InProcessLlmHost,
  initAdapters,
  type LlmHost,
  type LlmHostFiles,
  type LlmHostInfo,
  type LocalTrainingConfig,
  labelPrivateForwardBackward,
  trainLocal,
} from '@fednano/core';
import { imageTokenCount, labelPrivateParts, loadModelFolder } from '@fednano/model';
import { rng } from '@fednano/onnx-graph';
import { createLogger } from '@fednano/service-kit';
import { GrpcLlmHost, type grpc, serverCredentials } from '@fednano/wire';
import type { BatchStats } from './batcher.js';
import { BatchingLlm, type LlmCall } from './llm-batching.js';
import { llmHostMetrics } from './metrics.js';
import { createLlmHostServer } from './server.js';

// Label-private split training on the reference model: the answer-logits graphs built at start from llm.onnx, served
// in process, batched and over real gRPC, give the same losses and gradients as ForwardBackward without the targets
// ever reaching the host; and the extra bytes per step are what the accounting says.

const REFERENCE_DIR = fileURLToPath(new URL('../../../models/reference', import.meta.url));
const I = -100n;

/** Equal within `rtol` relative to the array's scale. */
function assertClose(actual: Float32Array, expected: Float32Array, what: string, rtol = 1e-4): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const scale = expected.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  assert.ok(scale > 0 && Number.isFinite(scale), `${what}: expected values are all zero or not finite`);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  assert.ok(worst <= rtol * scale, `${what}: max difference ${worst} exceeds ${rtol} x ${scale}`);
}

/**
 * Random embeddings and targets: sample i has `answers[i]` consecutive targets ending at a random position (1 is the
 * VQA layout, more a caption), so one batch mixes answer lengths.
 */
function request(meta: LlmHostInfo, answers: number[], seed: number): ForwardBackwardRequest {
  const r = rng(seed);
  const { contextLength: t, dModel: d, vocabSize: v } = meta;
  const batch = answers.length;
  const inputsEmbeds = Float32Array.from({ length: batch * t * d }, () => r() * 2 - 1);
  const targets = new BigInt64Array(batch * t).fill(I);
  answers.forEach((k, b) => {
    const last = k + Math.floor(r() * (t - k - 1));
    for (let p = last - k + 1; p <= last; p++) targets[b * t + p] = BigInt(Math.floor(r() * v));
  });
  return { batch, inputsEmbeds, targets, lossWeights: Float32Array.from({ length: batch }, () => 0.5 + r()) };
}

/** VQA-shaped examples: one answer token at answerPosition, and its embedding as the input that follows it. */
function vqaExamples(meta: LlmHostInfo, imageTokens: number, count: number, r: () => number): Example[] {
  const { contextLength: T, dModel: d, vocabSize: v } = meta;
  return Array.from({ length: count }, (_, i) => {
    const answerPosition = imageTokens + 2 + (i % (T - imageTokens - 3));
    const targets = new BigInt64Array(T).fill(I);
    const answerId = Math.floor(r() * v);
    targets[answerPosition] = BigInt(answerId);
    return {
      image: Float32Array.from({ length: imageTokens * d }, () => r() - 0.5),
      text: Float32Array.from({ length: (T - imageTokens) * d }, () => r() - 0.5),
      targets,
      answerPosition,
      answerId,
      candidates: [answerId],
      type: 'synthetic',
    };
  });
}

/** Records every call that reaches the host behind the gRPC server, with the request's fields. */
class SpyHost implements LlmHost {
  readonly calls: { method: string; request: Record<string, unknown> }[] = [];
  readonly forwardLogits: LlmHost['forwardLogits'];
  readonly backwardLogits: LlmHost['backwardLogits'];
  constructor(private readonly inner: BatchingLlm) {
    this.forwardLogits = (req) => this.record('forwardLogits', req, inner.forwardLogits!(req));
    this.backwardLogits = (req) => this.record('backwardLogits', req, inner.backwardLogits!(req));
  }
  private record<T>(method: string, request: object, result: Promise<T>): Promise<T> {
    this.calls.push({ method, request: { ...request } });
    return result;
  }
  info = () => this.inner.info();
  forwardBackward: LlmHost['forwardBackward'] = (req) =>
    this.record('forwardBackward', req, this.inner.forwardBackward(req));
  score: LlmHost['score'] = (req) => this.record('score', req, this.inner.score(req));
  close = () => this.inner.close();
}

describe('label-private mode on the reference model', () => {
  let meta: LlmHostInfo;
  let imageTokens: number;
  let local: InProcessLlmHost;
  let batching: BatchingLlm;
  let spy: SpyHost;
  let server: grpc.Server;
  let client: GrpcLlmHost;
  let metrics: ReturnType<typeof llmHostMetrics>;
  let buildMs: number;
  const batches: { call: LlmCall; stats: BatchStats }[] = [];

  before(async () => {
    const folder = await loadModelFolder(REFERENCE_DIR);
    const cfg = folder.manifest.config;
    meta = { modelId: 'ref', dModel: cfg.dModel, contextLength: cfg.contextLength, vocabSize: cfg.vocabSize };
    imageTokens = imageTokenCount(cfg);
    const started = performance.now();
    const files: LlmHostFiles = {
      llm: folder.files.llm,
      llmVjp: folder.files.llm_vjp,
      ...labelPrivateParts(cfg, folder.files.llm),
    };
    buildMs = performance.now() - started;
    local = await InProcessLlmHost.create(meta, files, 1);
    batching = await BatchingLlm.create(meta, files, {
      intraOpThreads: 1,
      maxBatch: 8,
      maxDelayMs: 20,
      onBatch: (call, stats) => batches.push({ call, stats }),
    });
    spy = new SpyHost(batching);
    const log = createLogger('label-private-test');
    log.level = 'silent';
    metrics = llmHostMetrics();
    server = createLlmHostServer({ host: spy, info: meta, maxBatch: 8, maxMessageBytes: 16 << 20, metrics, log });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', serverCredentials(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    client = new GrpcLlmHost(`127.0.0.1:${port}`, { retry: { budgetMs: 2000 } });
  });

  after(async () => {
    await client?.close();
    await new Promise<void>((resolve) => (server ? server.tryShutdown(() => resolve()) : resolve()));
    await Promise.all([local?.close(), batching?.close()]);
  });

  test('the graphs build from llm.onnx quickly, and ForwardLogits equals llm.onnx logits at the positions', async () => {
    assert.ok(buildMs < 2000, `building the label-private graphs took ${buildMs.toFixed(0)} ms`);
    const req = request(meta, [1, 1, 1], 3);
    const positions = [5, 17, 31];
    const score = await local.score({ ...req, positions });
    const v = meta.vocabSize;
    // Two slots per sample: the position, then an unused slot.
    const { logits } = await local.forwardLogits({
      batch: 3,
      answers: 2,
      inputsEmbeds: req.inputsEmbeds,
      positions: BigInt64Array.from(positions.flatMap((p) => [BigInt(p), -1n])),
    });
    for (let b = 0; b < 3; b++) {
      assertClose(
        logits.subarray(2 * b * v, (2 * b + 1) * v),
        score.logits.subarray(b * v, (b + 1) * v),
        `sample ${b}`,
      );
      assert.ok(
        logits.subarray((2 * b + 1) * v, (2 * b + 2) * v).every((x) => x === 0),
        'an unused slot has zero logits',
      );
    }
  });

  test('label-private losses and gradients equal ForwardBackward: in process, batched, and over gRPC', async () => {
    // 10 samples: more than the batcher's maxBatch of 8, so the batched paths also split and merge a request.
    const req = request(meta, [1, 5, 3, 1, 2, 1, 1, 4, 1, 2], 11);
    const reference = await local.forwardBackward(req);
    for (const [name, host] of [
      ['in-process', local],
      ['batching', batching],
      ['gRPC', client],
    ] as const) {
      const res = await labelPrivateForwardBackward(host, meta, req);
      assertClose(res.sampleLoss, reference.sampleLoss, `${name} sample losses`);
      assertClose(res.gradInputsEmbeds, reference.gradInputsEmbeds, `${name} gradient`);
    }
  });

  test('concurrent clients with different answer counts share batches and each gets its own result', async () => {
    const reqs = [request(meta, [1, 1], 21), request(meta, [4], 22), request(meta, [2, 1, 3], 23)];
    const expected = await Promise.all(reqs.map((r) => local.forwardBackward(r)));
    const before = batches.length;
    const got = await Promise.all(reqs.map((r) => labelPrivateForwardBackward(client, meta, r)));
    got.forEach((res, i) => {
      assertClose(res.sampleLoss, expected[i]!.sampleLoss, `client ${i} losses`);
      assertClose(res.gradInputsEmbeds, expected[i]!.gradInputsEmbeds, `client ${i} gradient`);
    });
    const shared = batches.slice(before).filter((b) => b.stats.parts > 1);
    assert.ok(
      shared.some((b) => b.call === 'forwardLogits') && shared.some((b) => b.call === 'backwardLogits'),
      `requests of different answer counts shared a batch (batches: ${JSON.stringify(batches.slice(before))})`,
    );
  });

  test('trainLocal with labelPrivate over gRPC trains the same adapters; bytes per step as accounted, no targets sent', async (t) => {
    const { contextLength: T, dModel: d, vocabSize: v } = meta;
    const dims = { imageTokens, contextLength: T, dModel: d };
    const r = rng(5);
    const examples = vqaExamples(meta, imageTokens, 12, r);
    const adapter = { rank: 4, alpha: 8 };
    // B starts non-zero so that the first step already moves A and the comparison covers every parameter.
    const start: AdapterWeights = initAdapters(d, adapter, 1);
    for (const [k, w] of start) if (k.endsWith('.B')) for (let i = 0; i < w.length; i++) w[i] = (r() - 0.5) * 0.02;
    const cfg: LocalTrainingConfig = { steps: 3, batchSize: 4, learningRate: 0.05, optimizer: 'sgd', seed: 9 };
    const bytes = (c: typeof metrics.receivedBytes) => async () =>
      Object.fromEntries((await c.get()).values.map((x) => [x.labels.method, x.value]));
    const received = bytes(metrics.receivedBytes);
    const sent = bytes(metrics.sentBytes);
    const sum = (o: Record<string, number>, methods: string[]) => methods.reduce((s, m) => s + (o[m] ?? 0), 0);

    const [in0, out0] = [await received(), await sent()];
    let timer = performance.now();
    const normal = await trainLocal(client, dims, adapter, start, examples, cfg);
    const normalMs = performance.now() - timer;
    const [in1, out1] = [await received(), await sent()];
    const callsBefore = spy.calls.length;
    timer = performance.now();
    const hidden = await trainLocal(client, dims, adapter, start, examples, { ...cfg, labelPrivate: true });
    const privateMs = performance.now() - timer;
    const [in2, out2] = [await received(), await sent()];

    assert.ok(Math.abs(hidden.meanLoss - normal.meanLoss) < 1e-4 * Math.abs(normal.meanLoss));
    for (const [k, w] of normal.weights) assertClose(hidden.weights.get(k)!, w, `adapter ${k}`);

    // The client's accounting equals the tensor bytes the server counted for the calls of each mode.
    assert.equal(normal.upBytes, sum(in1, ['ForwardBackward']) - sum(in0, ['ForwardBackward']));
    assert.equal(normal.downBytes, sum(out1, ['ForwardBackward']) - sum(out0, ['ForwardBackward']));
    const lp = ['ForwardLogits', 'BackwardLogits'];
    assert.equal(hidden.upBytes, sum(in2, lp) - sum(in1, lp));
    assert.equal(hidden.downBytes, sum(out2, lp) - sum(out1, lp));
    assert.equal(sum(in2, ['ForwardBackward']), sum(in1, ['ForwardBackward']), 'label-private sent no ForwardBackward');
    // Per sample, one answer token (K = 1): exactly these formulas, so a change in the wire format shows here.
    const perSample = (n: number) => n / normal.samples;
    const emb = T * d * 4;
    assert.equal(perSample(normal.upBytes), emb + T * 8 + 4);
    assert.equal(perSample(normal.downBytes), emb + 4);
    assert.equal(perSample(hidden.upBytes), 2 * (emb + 8) + v * 4);
    assert.equal(perSample(hidden.downBytes), v * 4 + emb);
    t.diagnostic(
      `bytes per sample per step (T=${T}, d=${d}, V=${v}, K=1): normal up ${perSample(normal.upBytes)} down ${perSample(normal.downBytes)}; ` +
        `label-private up ${perSample(hidden.upBytes)} down ${perSample(hidden.downBytes)} ` +
        `(total x${((hidden.upBytes + hidden.downBytes) / (normal.upBytes + normal.downBytes)).toFixed(2)}); ` +
        `time for ${cfg.steps} steps: normal ${normalMs.toFixed(0)} ms, label-private ${privateMs.toFixed(0)} ms`,
    );

    // What reached the host in label-private mode: only the two label-private calls, no targets, and zeros from the
    // position after each sample's answer (where a VQA sequence holds the answer token's embedding).
    const calls = spy.calls.slice(callsBefore);
    assert.equal(calls.length, 2 * cfg.steps);
    for (const { method, request } of calls) {
      assert.ok(method === 'forwardLogits' || method === 'backwardLogits', `unexpected ${method}`);
      assert.ok(!('targets' in request), `${method} request has no targets`);
      const { batch, answers, positions, inputsEmbeds } = request as {
        batch: number;
        answers: number;
        positions: BigInt64Array;
        inputsEmbeds: Float32Array;
      };
      assert.equal(answers, 1);
      for (let b = 0; b < batch; b++) {
        const p = Number(positions[b]);
        const after = inputsEmbeds.subarray((b * T + p + 1) * d, (b + 1) * T * d);
        assert.ok(
          after.every((x) => x === 0),
          `sample ${b}: nothing after the answer position ${p} is sent`,
        );
        assert.ok(inputsEmbeds.subarray(b * T * d, (b * T + p + 1) * d).some((x) => x !== 0));
      }
    }
    // The control: the normal path did send the targets, answer ids included.
    const normalCalls = spy.calls.slice(0, callsBefore).filter((c) => c.method === 'forwardBackward');
    assert.ok(normalCalls.length >= cfg.steps && normalCalls.every((c) => 'targets' in c.request));
  });

  test('the Fisher diagonal in label-private mode equals the normal one', async () => {
    const adapter = { rank: 4, alpha: 8 };
    const r = rng(8);
    const weights = initAdapters(meta.dModel, adapter, 2);
    for (const [k, w] of weights) if (k.endsWith('.B')) for (let i = 0; i < w.length; i++) w[i] = (r() - 0.5) * 0.02;
    const examples = vqaExamples(meta, imageTokens, 6, r);
    const dims = { imageTokens, contextLength: meta.contextLength, dModel: meta.dModel };
    const normal = await fisherDiagonal(local, dims, adapter, weights, examples, { batchSize: 3 });
    const hidden = await fisherDiagonal(local, dims, adapter, weights, examples, { batchSize: 3, labelPrivate: true });
    for (const [k, f] of normal) assertClose(hidden.get(k)!, f, `Fisher ${k}`, 1e-3);
  });

  test('bad label-private requests get INVALID_ARGUMENT; a host without the graphs answers UNIMPLEMENTED', async () => {
    const { contextLength: T, dModel: d, vocabSize: v } = meta;
    const embeds = new Float32Array(T * d);
    const bad = (positions: bigint[]) =>
      client.forwardLogits({
        batch: 1,
        answers: positions.length,
        inputsEmbeds: embeds,
        positions: BigInt64Array.from(positions),
      });
    await assert.rejects(bad([BigInt(T)]), /ForwardLogits failed: .*positions\[0\].*is 32/);
    await assert.rejects(bad([-2n]), /ForwardLogits failed: .*is -2/);
    await assert.rejects(
      client.backwardLogits({
        batch: 1,
        answers: 1,
        inputsEmbeds: embeds,
        positions: BigInt64Array.from([3n]),
        logitsGrad: new Float32Array(v - 1),
      }),
      /BackwardLogits failed: .*logits_grad has/,
    );
    const invalid = (await metrics.requestDuration.get()).values.filter(
      (x) => x.labels.code === 'INVALID_ARGUMENT' && x.metricName?.endsWith('_count'),
    );
    assert.equal(
      invalid.reduce((s, x) => s + x.value, 0),
      3,
    );

    // A host that only has ForwardBackward and Score (e.g. started with --serve-label-private=false).
    const plain: LlmHost = {
      info: async () => meta,
      forwardBackward: () => assert.fail('not used'),
      score: () => assert.fail('not used'),
      close: async () => {},
    };
    const log = createLogger('label-private-test');
    log.level = 'silent';
    const other = createLlmHostServer({
      host: plain,
      info: meta,
      maxBatch: 8,
      maxMessageBytes: 1 << 24,
      metrics: llmHostMetrics(),
      log,
    });
    const port = await new Promise<number>((resolve, reject) =>
      other.bindAsync('127.0.0.1:0', serverCredentials(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    const c = new GrpcLlmHost(`127.0.0.1:${port}`, { retry: { budgetMs: 2000 } });
    try {
      await assert.rejects(
        labelPrivateForwardBackward(c, meta, request(meta, [1], 1)),
        /ForwardLogits failed: .*does not serve label-private mode/,
      );
    } finally {
      await c.close();
      await new Promise<void>((resolve) => other.tryShutdown(() => resolve()));
    }
  });
});
