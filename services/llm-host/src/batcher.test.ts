import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  BatcherClosedError,
  type BatcherOptions,
  type BatchStats,
  DynamicBatcher,
  powerOfTwoBuckets,
} from './batcher.js';

/** A fake request: `values` are its samples; the fake runner answers each sample v with 10·v. */
interface Req {
  id: string;
  values: number[];
}

interface Batch {
  ids: string[];
  samples: number;
  paddedSize: number;
}

/** A batcher over a fake runner that records every batch, takes `runMs`, and fails batches holding a 'bad' part. */
function fake(options: Partial<BatcherOptions<Req, number[]>> & { runMs?: number } = {}) {
  const batches: Batch[] = [];
  const stats: BatchStats[] = [];
  let running = 0;
  let maxRunning = 0;
  const batcher = new DynamicBatcher<Req, number[]>({
    maxBatch: 8,
    maxDelayMs: 0,
    size: (r) => r.values.length,
    slice: (r, start, end) => ({ id: `${r.id}[${start}:${end}]`, values: r.values.slice(start, end) }),
    merge: (chunks) => chunks.flat(),
    run: async (parts, paddedSize) => {
      const samples = parts.reduce((n, p) => n + p.values.length, 0);
      batches.push({ ids: parts.map((p) => p.id), samples, paddedSize });
      maxRunning = Math.max(maxRunning, ++running);
      try {
        await sleep(options.runMs ?? 5);
        if (parts.some((p) => p.id.startsWith('bad'))) throw new Error('runner failed');
        return parts.map((p) => p.values.map((v) => 10 * v));
      } finally {
        running--;
      }
    },
    onBatch: (s) => stats.push(s),
    ...options,
  });
  return { batcher, batches, stats, maxRunning: () => maxRunning };
}

const req = (id: string, ...values: number[]): Req => ({ id, values });

describe('DynamicBatcher', () => {
  test('collects concurrent requests into one batch and routes each its results', async () => {
    const { batcher, batches } = fake({ maxDelayMs: 20 });
    const results = await Promise.all([
      batcher.submit(req('a', 1, 2)),
      batcher.submit(req('b', 3, 4, 5)),
      batcher.submit(req('c', 6)),
    ]);
    assert.deepEqual(results, [[10, 20], [30, 40, 50], [60]]);
    assert.deepEqual(batches, [{ ids: ['a', 'b', 'c'], samples: 6, paddedSize: 8 }]);
  });

  test('runs a full batch at once instead of waiting for the delay', async () => {
    const { batcher, batches } = fake({ maxDelayMs: 10_000 });
    const started = performance.now();
    await Promise.all([batcher.submit(req('a', 1, 2, 3, 4)), batcher.submit(req('b', 5, 6, 7, 8))]);
    assert.ok(performance.now() - started < 1000);
    assert.deepEqual(
      batches.map((b) => b.ids),
      [['a', 'b']],
    );
  });

  test('runs a batch the next request does not fit into at once, oldest first', async () => {
    const { batcher, batches } = fake({ maxDelayMs: 10_000 });
    const first = batcher.submit(req('a', 1, 2, 3, 4, 5));
    const second = batcher.submit(req('b', 6, 7, 8, 9));
    assert.deepEqual(await first, [10, 20, 30, 40, 50]); // did not wait 10 s
    assert.equal(batcher.queueDepth, 4);
    await batcher.drain(); // drain runs the rest without waiting for the delay
    assert.deepEqual(await second, [60, 70, 80, 90]);
    assert.deepEqual(
      batches.map((b) => b.ids),
      [['a'], ['b']],
    );
  });

  test('a lone request waits maxDelayMs for company, then runs', async () => {
    const { batcher, batches, stats } = fake({ maxDelayMs: 200 });
    const result = batcher.submit(req('a', 1));
    await sleep(25);
    assert.equal(batches.length, 0, 'ran before the delay passed');
    const late = batcher.submit(req('b', 2)); // joins within the delay
    assert.deepEqual(await Promise.all([result, late]), [[10], [20]]);
    assert.deepEqual(
      batches.map((b) => b.ids),
      [['a', 'b']],
    );
    // waited about maxDelayMs since the oldest request, not since the newest
    assert.ok(stats[0]!.waitSeconds >= 0.195 && stats[0]!.waitSeconds < 1, `waited ${stats[0]!.waitSeconds} s`);
  });

  test('with no delay a free runner starts at once; requests arriving meanwhile share the next batch', async () => {
    const { batcher, batches } = fake({ maxDelayMs: 0, runMs: 100 });
    const a = batcher.submit(req('a', 1));
    await sleep(1);
    assert.equal(batches.length, 1, 'did not start at once');
    const rest = [batcher.submit(req('b', 2)), batcher.submit(req('c', 3, 4))];
    assert.equal(batcher.queueDepth, 3);
    assert.deepEqual(await Promise.all([a, ...rest]), [[10], [20], [30, 40]]);
    assert.deepEqual(
      batches.map((b) => b.ids),
      [['a'], ['b', 'c']],
    );
    assert.equal(batcher.queueDepth, 0);
  });

  test('runs at most `concurrency` batches at once', async () => {
    const { batcher, batches, maxRunning } = fake({ maxBatch: 2, buckets: [1, 2], concurrency: 2, runMs: 20 });
    const results = await Promise.all(Array.from({ length: 7 }, (_, i) => batcher.submit(req(`r${i}`, i))));
    assert.deepEqual(
      results,
      Array.from({ length: 7 }, (_, i) => [10 * i]),
    );
    assert.equal(maxRunning(), 2);
    // r0 and r1 start alone on the two idle runners; later requests pair up while both are busy
    assert.deepEqual(
      batches.map((b) => b.ids),
      [['r0'], ['r1'], ['r2', 'r3'], ['r4', 'r5'], ['r6']],
    );
  });

  test('splits a request larger than maxBatch and reassembles its results in order', async () => {
    const { batcher, batches } = fake({ maxBatch: 4, buckets: [1, 2, 4], concurrency: 2, maxDelayMs: 5 });
    const big = Array.from({ length: 10 }, (_, i) => i + 1);
    const [whole, small] = await Promise.all([batcher.submit(req('big', ...big)), batcher.submit(req('s', 99))]);
    assert.deepEqual(
      whole,
      big.map((v) => 10 * v),
    );
    assert.deepEqual(small, [990]);
    assert.deepEqual(batches, [
      { ids: ['big[0:4]'], samples: 4, paddedSize: 4 },
      { ids: ['big[4:8]'], samples: 4, paddedSize: 4 },
      { ids: ['big[8:10]', 's'], samples: 3, paddedSize: 4 }, // the last chunk shares a batch
    ]);
  });

  test('pads each batch to the smallest bucket that holds it', async () => {
    const { batcher, batches } = fake({ maxBatch: 16, buckets: [1, 2, 4, 8, 16], maxDelayMs: 10_000 });
    for (const n of [1, 2, 3, 5, 8, 9, 16]) {
      const result = batcher.submit(req(`n${n}`, ...Array.from({ length: n }, () => 1)));
      await batcher.drain();
      assert.equal((await result).length, n);
    }
    assert.deepEqual(
      batches.map((b) => [b.samples, b.paddedSize]),
      [
        [1, 1],
        [2, 2],
        [3, 4],
        [5, 8],
        [8, 8],
        [9, 16],
        [16, 16],
      ],
    );
    assert.deepEqual(powerOfTwoBuckets(32), [1, 2, 4, 8, 16, 32]);
    assert.deepEqual(powerOfTwoBuckets(24), [1, 2, 4, 8, 16, 24]);
  });

  test('a failed run rejects exactly the requests in that batch', async () => {
    const { batcher, batches } = fake({ maxBatch: 2, buckets: [1, 2], runMs: 10 });
    const g1 = batcher.submit(req('g1', 1)); // runs alone at once
    const bad = batcher.submit(req('bad', 2));
    const g2 = batcher.submit(req('g2', 3)); // shares the failing batch
    const g3 = batcher.submit(req('g3', 4));
    const g4 = batcher.submit(req('g4', 5));
    const settled = await Promise.allSettled([g1, bad, g2, g3, g4]);
    assert.deepEqual(
      batches.map((b) => b.ids),
      [['g1'], ['bad', 'g2'], ['g3', 'g4']],
    );
    assert.deepEqual(
      settled.map((s) => s.status),
      ['fulfilled', 'rejected', 'rejected', 'fulfilled', 'fulfilled'],
    );
    await assert.rejects(bad, /runner failed/);
    await assert.rejects(g2, /runner failed/);
    assert.deepEqual(await g4, [50]);
  });

  test('a failed chunk rejects its request once and drops its chunks still queued', async () => {
    const { batcher, batches } = fake({ maxBatch: 2, buckets: [1, 2], runMs: 10 });
    const bad = batcher.submit(req('bad', 1, 2, 3, 4, 5, 6)); // three chunks; the first fails
    const other = batcher.submit(req('ok', 7));
    await assert.rejects(bad, /runner failed/);
    assert.deepEqual(await other, [70]);
    await batcher.drain();
    assert.deepEqual(
      batches.map((b) => b.ids),
      [['bad[0:2]'], ['ok']],
    );
    assert.equal(batcher.queueDepth, 0);
  });

  test('a runner returning the wrong number of results fails its batch clearly', async () => {
    const batcher = new DynamicBatcher<Req, number[]>({
      maxBatch: 4,
      maxDelayMs: 5,
      size: (r) => r.values.length,
      slice: (r) => r,
      merge: (c) => c.flat(),
      run: async () => [[1]],
    });
    const both = [batcher.submit(req('a', 1)), batcher.submit(req('b', 2))];
    for (const p of both) await assert.rejects(p, /returned 1 results for 2 request parts/);
  });

  test('rejects requests without samples and invalid options', async () => {
    const { batcher } = fake();
    await assert.rejects(batcher.submit(req('empty')), /positive integer number of samples, got 0/);
    const make = (o: Partial<BatcherOptions<Req, number[]>>) => () => fake(o);
    assert.throws(make({ maxBatch: 0 }), /maxBatch must be a positive integer/);
    assert.throws(make({ buckets: [1, 4, 2, 8] }), /ascending/);
    assert.throws(make({ buckets: [1, 2, 4] }), /last bucket must equal maxBatch 8/);
    assert.throws(make({ concurrency: 0 }), /concurrency/);
  });

  test('onBatch reports samples, padded size and seconds', async () => {
    const { batcher, stats } = fake({ maxDelayMs: 10, runMs: 20 });
    await Promise.all([batcher.submit(req('a', 1, 2)), batcher.submit(req('b', 3))]);
    assert.equal(stats.length, 1);
    const s = stats[0]!;
    assert.deepEqual([s.samples, s.paddedSize, s.parts, s.ok], [3, 4, 2, true]);
    assert.ok(s.seconds >= 0.015 && s.seconds < 1, `run took ${s.seconds} s`);
  });

  test('drain waits for queued and running work; close refuses new requests but finishes queued ones', async () => {
    const { batcher, batches } = fake({ maxBatch: 2, buckets: [1, 2], maxDelayMs: 10_000, runMs: 20 });
    await batcher.drain(); // nothing to wait for
    const pending = [batcher.submit(req('a', 1, 2)), batcher.submit(req('b', 3)), batcher.submit(req('c', 4))];
    let finished = 0;
    for (const p of pending) p.then(() => finished++);
    const closed = batcher.close();
    await assert.rejects(batcher.submit(req('late', 5)), (e: Error) => {
      assert.ok(e instanceof BatcherClosedError);
      assert.match(e.message, /closed and accepts no new requests/);
      return true;
    });
    await closed;
    assert.equal(finished, 3, 'close() resolved before the queued requests finished');
    assert.deepEqual(await Promise.all(pending), [[10, 20], [30], [40]]);
    assert.deepEqual(
      batches.map((b) => b.ids),
      [['a'], ['b', 'c']],
    );
    assert.equal(batcher.inFlight, 0);
    assert.equal(batcher.queueDepth, 0);
  });
});
