import assert from 'node:assert/strict';
import { test } from 'node:test';
import { errors } from '@nats-io/nats-core';
import { isNatsUnavailable, retryWhileUnavailable } from './store-retry.js';

// What the aggregator retries while NATS is away, and what it still fails on at once.

test('timeouts, no responders and JetStream 503s are "unavailable"; other errors are not', () => {
  assert.equal(isNatsUnavailable(new errors.TimeoutError()), true);
  assert.equal(isNatsUnavailable(new errors.NoRespondersError('$JS.API.STREAM.MSG.GET.KV_x')), true);
  assert.equal(isNatsUnavailable(new Error('jetstream is not enabled')), true);
  const api503 = Object.assign(new Error('JetStream system temporarily unavailable'), {
    name: 'JetStreamApiError',
    status: 503,
    code: 10008,
  });
  assert.equal(isNatsUnavailable(api503), true);
  assert.equal(isNatsUnavailable(new Error('wrapped', { cause: new errors.TimeoutError() })), true);
  assert.equal(isNatsUnavailable(new Error('wrong last sequence: 7')), false);
  assert.equal(isNatsUnavailable(new errors.ClosedConnectionError()), false);
  assert.equal(
    isNatsUnavailable(Object.assign(new Error('stream not found'), { name: 'JetStreamApiError', status: 404 })),
    false,
  );
  assert.equal(isNatsUnavailable(undefined), false);
});

/** A clock that only moves when the retry loop sleeps. */
function fakeTime() {
  let t = 0;
  const slept: number[] = [];
  return {
    now: () => t,
    sleep: async (ms: number) => {
      slept.push(ms);
      t += ms;
    },
    slept,
  };
}

test('retries an unavailable store with doubling delays until it answers', async () => {
  const clock = fakeTime();
  let calls = 0;
  const retries: number[] = [];
  const value = await retryWhileUnavailable(
    async () => {
      if (++calls < 5) throw new errors.TimeoutError();
      return 'stored';
    },
    { budgetMs: 60_000, ...clock, onRetry: (r) => retries.push(r.attempt) },
  );
  assert.equal(value, 'stored');
  assert.equal(calls, 5);
  assert.deepEqual(clock.slept, [100, 200, 400, 800]);
  assert.deepEqual(retries, [1, 2, 3, 4]);
});

test('gives up when the budget is spent, and never retries a real error', async () => {
  const clock = fakeTime();
  let calls = 0;
  await assert.rejects(
    retryWhileUnavailable(
      async () => {
        calls++;
        throw new errors.TimeoutError();
      },
      { budgetMs: 5_000, maxDelayMs: 1000, ...clock },
    ),
    { name: 'TimeoutError' },
  );
  assert.ok(clock.now() <= 5_000, `stopped within the budget (at ${clock.now()} ms)`);
  assert.ok(calls >= 5);
  let conflicts = 0;
  await assert.rejects(
    retryWhileUnavailable(
      async () => {
        conflicts++;
        throw new Error('wrong last sequence: 3');
      },
      { budgetMs: 60_000, ...fakeTime() },
    ),
    /wrong last sequence/,
  );
  assert.equal(conflicts, 1);
});
