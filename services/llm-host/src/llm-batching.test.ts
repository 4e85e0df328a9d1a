import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type ForwardBackwardRequest, InProcessLlmHost, type LlmHostInfo, type ScoreRequest } from '@fednano/core';
import { loadModelFolder } from '@fednano/model';
import type { BatchStats } from './batcher.js';
import { BatchingLlm, type LlmCall } from './llm-batching.js';
import { IGNORE_INDEX } from './llm-kernels.js';

const REFERENCE_DIR = fileURLToPath(new URL('../../../models/reference', import.meta.url));

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random embeddings, and targets on the text half of each sample (the image half predicts nothing). */
function sampleInputs(meta: LlmHostInfo, batch: number, seed: number) {
  const r = random(seed);
  const { contextLength: t, dModel: d, vocabSize: v } = meta;
  const inputsEmbeds = Float32Array.from({ length: batch * t * d }, () => r() * 2 - 1);
  const targets = BigInt64Array.from({ length: batch * t }, (_, i) =>
    i % t < t / 2 ? IGNORE_INDEX : BigInt(Math.floor(r() * v)),
  );
  return { batch, inputsEmbeds, targets, r };
}

function fbRequest(meta: LlmHostInfo, batch: number, seed: number): ForwardBackwardRequest {
  const { r, ...inputs } = sampleInputs(meta, batch, seed);
  return { ...inputs, lossWeights: Float32Array.from({ length: batch }, () => 0.5 + r()) };
}

function scoreRequest(meta: LlmHostInfo, batch: number, seed: number): ScoreRequest {
  const { r, ...inputs } = sampleInputs(meta, batch, seed);
  return { ...inputs, positions: Array.from({ length: batch }, () => Math.floor(r() * meta.contextLength)) };
}

/** Equal within `rtol` relative to the array's scale (elementwise relative error means nothing near zero). */
function assertClose(actual: Float32Array, expected: Float32Array, what: string, rtol = 1e-5): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const scale = expected.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  assert.ok(scale > 0 && Number.isFinite(scale), `${what}: expected values are all zero or not finite`);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  assert.ok(worst <= rtol * scale, `${what}: max difference ${worst} exceeds ${rtol} x ${scale}`);
}

describe('BatchingLlm on the reference model', () => {
  let meta: LlmHostInfo;
  let files: { llm: Uint8Array; llmVjp: Uint8Array };
  let alone: InProcessLlmHost;
  let batching: BatchingLlm;
  const batches: { call: LlmCall; stats: BatchStats }[] = [];

  before(async () => {
    const folder = await loadModelFolder(REFERENCE_DIR);
    const { dModel, contextLength, vocabSize } = folder.manifest.config;
    meta = { modelId: folder.manifest.name, dModel, contextLength, vocabSize };
    files = { llm: folder.files.llm, llmVjp: folder.files.llm_vjp };
    [alone, batching] = await Promise.all([
      InProcessLlmHost.create(meta, files, 1),
      BatchingLlm.create(meta, files, {
        sessions: 1,
        intraOpThreads: 1,
        maxBatch: 8,
        maxDelayMs: 20,
        buckets: [1, 2, 4, 8],
        onBatch: (call, stats) => batches.push({ call, stats }),
      }),
    ]);
  });

  after(async () => {
    await Promise.all([alone?.close(), batching?.close()]);
  });

  // 1 + 3 + 2 fill one batch; 11 is larger than maxBatch and is split into 8 + 3.
  const sizes = [1, 3, 2, 11];

  test('forwardBackward: concurrent requests give what each gives alone', async () => {
    const requests = sizes.map((b, i) => fbRequest(meta, b, 100 + i));
    batches.length = 0;
    const together = await Promise.all(requests.map((r) => batching.forwardBackward(r)));
    for (const [i, req] of requests.entries()) {
      const expected = await alone.forwardBackward(req);
      assertClose(together[i]!.sampleLoss, expected.sampleLoss, `request ${i} sampleLoss`);
      assertClose(together[i]!.gradInputsEmbeds, expected.gradInputsEmbeds, `request ${i} gradInputsEmbeds`);
    }
    // 17 samples in fewer runs than requests, padded to buckets
    assert.ok(batches.length < requests.length, `${batches.length} batches for ${requests.length} requests`);
    assert.equal(
      batches.reduce((n, b) => n + b.stats.samples, 0),
      17,
    );
    for (const { call, stats } of batches) {
      assert.equal(call, 'forwardBackward');
      assert.ok([1, 2, 4, 8].includes(stats.paddedSize) && stats.paddedSize >= stats.samples);
    }
    assert.ok(
      batches.some((b) => b.stats.paddedSize > b.stats.samples),
      'no batch was padded',
    );
  });

  test('score: concurrent requests give what each gives alone', async () => {
    const requests = sizes.map((b, i) => scoreRequest(meta, b, 200 + i));
    batches.length = 0;
    const together = await Promise.all(requests.map((r) => batching.score(r)));
    for (const [i, req] of requests.entries()) {
      const expected = await alone.score(req);
      assertClose(together[i]!.sampleLoss, expected.sampleLoss, `request ${i} sampleLoss`);
      assertClose(together[i]!.logits, expected.logits, `request ${i} logits`);
    }
    assert.ok(batches.length < requests.length);
    assert.ok(batches.every((b) => b.call === 'score'));
  });

  test('a malformed request fails alone, before it is queued', async () => {
    const good = fbRequest(meta, 2, 300);
    const shortEmbeds = { ...fbRequest(meta, 2, 301), inputsEmbeds: new Float32Array(10) };
    const badTarget = fbRequest(meta, 1, 302);
    badTarget.targets[20] = BigInt(meta.vocabSize);
    const badPosition = { ...scoreRequest(meta, 1, 303), positions: [meta.contextLength] };
    const [ok, ...failed] = await Promise.allSettled([
      batching.forwardBackward(good),
      batching.forwardBackward(shortEmbeds),
      batching.forwardBackward(badTarget),
      batching.score(badPosition),
    ]);
    assert.equal(ok!.status, 'fulfilled');
    const reasons = failed.map((f) => (f.status === 'rejected' ? (f.reason as Error).message : 'fulfilled'));
    assert.match(reasons[0]!, /inputsEmbeds has 10 values, expected batch x contextLength x dModel = 2x32x128/);
    assert.match(
      reasons[1]!,
      /targets\[20\] \(sample 0, position 20\) is 906: expected -100 or a token id in 0\.\.905/,
    );
    assert.match(reasons[2]!, /position 32 of sample 0 is outside 0\.\.31/);
  });

  test('the caller keeps its arrays: nothing the caller passed is detached', async () => {
    const req = fbRequest(meta, 3, 400);
    await batching.forwardBackward(req);
    assert.equal(req.inputsEmbeds.length, 3 * meta.contextLength * meta.dModel);
    assert.equal(req.targets.length, 3 * meta.contextLength);
  });

  test('close() finishes queued requests, then refuses new ones', async () => {
    const extra = await BatchingLlm.create(meta, files, { intraOpThreads: 1, maxBatch: 4, maxDelayMs: 1000 });
    const pending = extra.forwardBackward(fbRequest(meta, 1, 500));
    await extra.close(); // does not wait the 1 s delay
    assert.equal((await pending).sampleLoss.length, 1);
    await assert.rejects(extra.score(scoreRequest(meta, 1, 501)), /closed and accepts no new requests/);
    assert.deepEqual(await extra.info(), meta);
  });
});
