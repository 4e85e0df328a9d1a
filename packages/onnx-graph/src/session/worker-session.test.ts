import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DType } from '../dtype.js';
import { Graph } from '../graph.js';
import { floats, randn, rng, type Tensor } from '../tensor.js';
import { LocalSession } from './local.js';
import { WorkerSession } from './worker-session.js';

/** y = x @ W repeated `depth` times with tanh in between: enough work to notice a blocked event loop. */
function chain(n: number, depth: number): Graph {
  const g = new Graph();
  let x = g.input('x', DType.FLOAT, ['batch', n]);
  const w = g.constant(randn(DType.FLOAT, [n, n], rng(1), 1 / Math.sqrt(n)), 'w');
  for (let i = 0; i < depth; i++) x = g.op('Tanh', [g.op('MatMul', [x, w])]);
  g.output(g.op('Identity', [x], {}, { outputs: ['y'] }));
  return g;
}

/** Runs `work` while a 2 ms timer ticks; returns the longest gap between ticks and the work's duration. */
async function eventLoopGap(work: () => Promise<unknown>): Promise<{ maxGap: number; duration: number }> {
  let last = performance.now();
  let maxGap = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 2);
  const start = performance.now();
  await work();
  const duration = performance.now() - start;
  clearInterval(timer);
  return { maxGap: Math.max(maxGap, performance.now() - last), duration };
}

describe('WorkerSession', () => {
  const small = chain(8, 2);
  let session: WorkerSession;
  before(async () => {
    session = await WorkerSession.create(small, { intraOpThreads: 1 });
  });
  after(async () => {
    await session.close();
  });

  test('gives the same results as a session on the main thread', async () => {
    const x = randn(DType.FLOAT, [3, 8], rng(2));
    const local = await LocalSession.create(small);
    const expected = (await local.run({ x })).y!;
    await local.close();
    const got = (await session.run({ x })).y!;
    assert.deepEqual(got.dims, [3, 8]);
    assert.deepEqual(Array.from(got.data as Float32Array), Array.from(expected.data as Float32Array));
    assert.deepEqual(session.inputNames, ['x']);
    assert.deepEqual(session.outputNames, ['y']);
  });

  test('routes concurrent runs back to their callers', async () => {
    const inputs = Array.from({ length: 16 }, (_, i) => randn(DType.FLOAT, [1 + (i % 4), 8], rng(100 + i)));
    const results = await Promise.all(inputs.map((x) => session.run({ x })));
    const local = await LocalSession.create(small);
    for (const [i, x] of inputs.entries()) {
      const expected = (await local.run({ x })).y!;
      assert.deepEqual(Array.from(results[i]!.y!.data as Float32Array), Array.from(expected.data as Float32Array));
    }
    await local.close();
  });

  test('moves input buffers without copying when asked (the caller is left with detached arrays)', async () => {
    const x = randn(DType.FLOAT, [2, 8], rng(3));
    const expected = (await session.run({ x: { ...x, data: x.data.slice() } })).y!;
    const got = (await session.run({ x }, { transferInputs: true })).y!;
    assert.equal(x.data.byteLength, 0, 'input buffer should have moved to the worker');
    assert.deepEqual(Array.from(got.data as Float32Array), Array.from(expected.data as Float32Array));
  });

  test('writes into preallocated outputs that can be passed in again', async () => {
    let out: Tensor = floats([2, 8]);
    const first = out;
    const expected = (await session.run({ x: floats([2, 8], new Array(16).fill(0.5)) })).y!;
    for (let i = 0; i < 5; i++) {
      const result = await session.run({ x: floats([2, 8], new Array(16).fill(0.5)) }, { preallocated: { y: out } });
      out = result.y!;
      assert.deepEqual(Array.from(out.data as Float32Array), Array.from(expected.data as Float32Array));
    }
    assert.equal(first.data.byteLength, 0, 'the preallocated buffer moves to the worker and back');
  });

  test("a failed run rejects with ONNX Runtime's message and the session stays usable", async () => {
    await assert.rejects(session.run({ wrong: floats([1, 8]) }), /ONNX Runtime run failed: .*x/);
    const ok = await session.run({ x: floats([1, 8]) });
    assert.deepEqual(ok.y!.dims, [1, 8]);
  });

  test('an invalid model fails at creation with a clear error', async () => {
    await assert.rejects(WorkerSession.create(new Uint8Array([1, 2, 3, 4])), /cannot load model/);
  });

  test('runs after close are refused', async () => {
    const s = await WorkerSession.create(small);
    await s.close();
    await assert.rejects(s.run({ x: floats([1, 8]) }), /session is closed/);
  });

  test('does not block the event loop while ONNX Runtime computes (a main-thread session does)', async () => {
    const heavy = chain(512, 64);
    const x = randn(DType.FLOAT, [256, 512], rng(4));
    const local = await LocalSession.create(heavy, { intraOpThreads: 1 });
    const worker = await WorkerSession.create(heavy, { intraOpThreads: 1 });
    try {
      await worker.run({ x }); // warm-up
      const blocked = await eventLoopGap(() => local.run({ x }));
      const free = await eventLoopGap(() => worker.run({ x }));
      // The main-thread run stalls timers for most of its duration; the worker run leaves them ticking.
      assert.ok(blocked.maxGap > 0.5 * blocked.duration, `control: local ${JSON.stringify(blocked)}`);
      assert.ok(free.maxGap < 0.5 * free.duration, `worker ${JSON.stringify(free)}`);
    } finally {
      await local.close();
      await worker.close();
    }
  });
});
