import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LlmHost } from '@fednano/core';
import { rng } from '@fednano/onnx-graph';
import { createLogger } from '@fednano/service-kit';
import { channelOptions, clientCredentials, grpc, llmHostProto, serverCredentials } from '@fednano/wire';
import { llmHostMetrics } from './metrics.js';
import { createLlmHostServer } from './server.js';

// Fuzz of the llm-host's request decoder over real gRPC: random and mutated ForwardBackward/Score messages get an
// answer (OK for a valid one, INVALID_ARGUMENT otherwise), never an internal error, and the server keeps serving.
const T = 4;
const D = 3;
const V = 5;

test('random and mutated requests get OK or INVALID_ARGUMENT, never an internal error', async () => {
  // A host that checks nothing itself: whatever reaches it passed the server's decoder.
  const host: LlmHost = {
    info: async () => ({ modelId: 'fuzz', dModel: D, contextLength: T, vocabSize: V }),
    forwardBackward: async (r) => ({
      sampleLoss: new Float32Array(r.batch),
      gradInputsEmbeds: new Float32Array(r.batch * T * D),
    }),
    score: async (r) => ({ sampleLoss: new Float32Array(r.batch), logits: new Float32Array(r.batch * V) }),
    close: async () => {},
  };
  const log = createLogger('fuzz');
  log.level = 'silent';
  const server = createLlmHostServer({
    host,
    info: await host.info(),
    maxBatch: 8,
    maxMessageBytes: 1 << 20,
    metrics: llmHostMetrics(),
    log,
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', serverCredentials(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  const Client = llmHostProto().fednano.v1.LlmHost;
  const client = new Client(`127.0.0.1:${port}`, clientCredentials(), channelOptions(1 << 20));
  const random = rng(42);
  const pick = <X>(xs: X[]) => xs[Math.floor(random() * xs.length)]!;
  const tensor = (valid: { dtype: string; dims: number[] }) => {
    const mutate = random() < 0.7;
    const dims = mutate
      ? valid.dims.map((d) => pick([d, d, 0, -1, d + 1, 2 ** 31, Number.NaN])).slice(0, pick([0, 1, 2, 3, 4]))
      : valid.dims;
    const n = valid.dims.reduce((a, b) => a * b, 1) * (valid.dtype === 'DATA_TYPE_INT64' ? 8 : 4);
    const len = mutate ? pick([0, 1, n - 1, n, n + 4, Math.floor(random() * 3 * n)]) : n;
    const data = Buffer.alloc(Math.max(0, len));
    for (let i = 0; i < data.length; i++) data[i] = Math.floor(random() * 256);
    return random() < 0.05
      ? null
      : {
          dtype: mutate
            ? pick(['DATA_TYPE_FLOAT', 'DATA_TYPE_INT64', 'DATA_TYPE_UNSPECIFIED', valid.dtype])
            : valid.dtype,
          dims: dims.map((d) => (Number.isFinite(d) ? d : 0)),
          data,
        };
  };
  const codes = new Map<string, number>();
  const call = (method: 'forwardBackward' | 'score', req: object) =>
    new Promise<void>((resolve) => {
      (client[method] as (r: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void)(
        req,
        { deadline: Date.now() + 5000 },
        (e) => {
          const code = e ? grpc.status[e.code] : 'OK';
          codes.set(code, (codes.get(code) ?? 0) + 1);
          resolve();
        },
      );
    });
  try {
    for (let i = 0; i < 1500; i++) {
      const b = 1 + Math.floor(random() * 3);
      if (random() < 0.5)
        await call('forwardBackward', {
          inputsEmbeds: tensor({ dtype: 'DATA_TYPE_FLOAT', dims: [b, T, D] }),
          targets: tensor({ dtype: 'DATA_TYPE_INT64', dims: [b, T] }),
          lossWeights: tensor({ dtype: 'DATA_TYPE_FLOAT', dims: [b] }),
          clientId: 'fuzz',
        });
      else
        await call('score', {
          inputsEmbeds: tensor({ dtype: 'DATA_TYPE_FLOAT', dims: [b, T, D] }),
          targets: tensor({ dtype: 'DATA_TYPE_INT64', dims: [b, T] }),
          positions: Array.from({ length: pick([b, b, b - 1, b + 1]) }, () => pick([0, 1, T - 1, T, -1])),
          clientId: 'fuzz',
        });
    }
    const seen = Object.fromEntries(codes);
    assert.deepEqual(
      Object.keys(seen).filter((c) => c !== 'OK' && c !== 'INVALID_ARGUMENT'),
      [],
      JSON.stringify(seen),
    );
    assert.ok((seen.INVALID_ARGUMENT ?? 0) > 500, JSON.stringify(seen));
    assert.ok((seen.OK ?? 0) > 20, JSON.stringify(seen)); // valid requests still pass
  } finally {
    client.close();
    await new Promise<void>((r) => server.tryShutdown(() => r()));
  }
});
