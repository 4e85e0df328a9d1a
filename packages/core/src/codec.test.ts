import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { rng } from '@fednano/onnx-graph';
import protobuf from 'protobufjs';
import { adapterShapes, initAdapters } from './adapters.js';
import {
  type AdapterUpdate,
  adapterSha256,
  decodeUpdate,
  type Expectation,
  encodeUpdate,
  UpdateRejected,
} from './codec.js';
import { fromFloat16, toFloat16 } from './float16.js';

const root = protobuf.loadSync(fileURLToPath(new URL('../../../proto/fednano/v1/update.proto', import.meta.url)));
const Envelope = root.lookupType('fednano.v1.UpdateEnvelope');
const Update = root.lookupType('fednano.v1.AdapterUpdate');

const d = 8;
const cfg = { rank: 2, alpha: 4 };
const shapes = adapterShapes(d, cfg.rank);
const global = initAdapters(d, cfg, 1);
const base = adapterSha256(global, shapes);
const weights = new Map([...initAdapters(d, cfg, 2)].map(([k, v]) => [k, v.map((x, i) => x + 0.01 * (i % 7) - 0.02)]));
const fisher = new Map([...weights].map(([k, v]) => [k, v.map((x) => x * x)]));
const update: AdapterUpdate = {
  namespace: 'team-a',
  federation: 'vqa',
  round: 3,
  clientId: 'hospital-1',
  baseAdapterSha256: base,
  sampleCount: 120,
  weights,
  fisher,
  metrics: { loss: 0.5, steps: 20, seconds: 1.5, splitUpBytes: 1000, splitDownBytes: 900 },
};
const expect: Expectation = {
  namespace: 'team-a',
  federation: 'vqa',
  round: 3,
  baseAdapterSha256: base,
  shapes,
  clientId: 'hospital-1',
  requireFisher: true,
};
const valid = encodeUpdate(update, { shapes });

function rejects(bytes: Uint8Array, reason: string, pattern: RegExp, e: Expectation = expect) {
  assert.throws(
    () => decodeUpdate(bytes, e),
    (err: unknown) => err instanceof UpdateRejected && err.reason === reason && pattern.test(err.message),
  );
}
/** Re-encodes a changed update with a correct envelope, to reach the checks behind the checksum. */
// biome-ignore lint/suspicious/noExplicitAny: protobufjs objects are untyped; the test edits them freely
function resealed(change: (u: Record<string, any>) => void): Uint8Array {
  const u = Update.toObject(Update.decode(Envelope.toObject(Envelope.decode(valid)).update), { defaults: true });
  change(u);
  const bytes = Update.encode(Update.fromObject(u)).finish();
  return Envelope.encode(
    Envelope.create({ formatVersion: 1, update: bytes, sha256: createHash('sha256').update(bytes).digest() }),
  ).finish();
}

describe('update codec', () => {
  test('round-trips float32 exactly, with Fisher and metrics', () => {
    const back = decodeUpdate(valid, expect);
    assert.deepEqual(back.weights, weights);
    assert.deepEqual(back.fisher, fisher);
    assert.deepEqual(back.metrics, update.metrics);
    assert.equal(back.sampleCount, 120);
    assert.equal(back.clientId, 'hospital-1');
  });

  test('float16, bfloat16 and int8 encodings stay within their precision and shrink the message', () => {
    const bound = { float16: 1e-3, bfloat16: 8e-3, int8: 1 / 127 };
    for (const dtype of ['float16', 'bfloat16', 'int8'] as const) {
      const bytes = encodeUpdate(update, { shapes, dtype });
      assert.ok(bytes.length < valid.length * 0.7, `${dtype}: ${bytes.length} vs ${valid.length}`);
      const back = decodeUpdate(bytes, expect);
      for (const [k, v] of weights) {
        const max = Math.max(...v.map(Math.abs));
        v.forEach((x, i) => {
          assert.ok(
            Math.abs(back.weights.get(k)![i]! - x) <=
              bound[dtype] * Math.max(Math.abs(x), dtype === 'int8' ? max : 0) + 1e-7,
            `${dtype} ${k}[${i}]`,
          );
        });
      }
    }
    assert.equal(fromFloat16(toFloat16(65504)), 65504);
    assert.equal(fromFloat16(toFloat16(1e6)), Number.POSITIVE_INFINITY);
  });

  test('the adapter hash depends on every value', () => {
    const other = new Map([...global].map(([k, v]) => [k, v.slice()]));
    other.get('text.A')![0]! += 1e-7;
    assert.notEqual(adapterSha256(other, shapes), base);
  });

  test('each kind of bad update is rejected with its reason', () => {
    rejects(valid, 'oversize', /exceeds the limit of 100/, { ...expect, maxBytes: 100 });
    rejects(Uint8Array.from([0xff, 0xff, 0xff, 0x0f]), 'malformed', /not an update envelope/);
    rejects(
      Envelope.encode(
        Envelope.create({ formatVersion: 2, update: new Uint8Array(), sha256: new Uint8Array() }),
      ).finish(),
      'version',
      /format version 2/,
    );
    const flipped = valid.slice();
    flipped[40]! ^= 0x10;
    rejects(flipped, 'checksum', /sha256/);
    rejects(valid, 'federation', /team-a\/vqa, this is team-b\/vqa/, { ...expect, namespace: 'team-b' });
    rejects(valid, 'round', /round 3, the current round is 4/, { ...expect, round: 4 });
    rejects(valid, 'client', /claims client 'hospital-1' but was sent by 'hospital-2'/, {
      ...expect,
      clientId: 'hospital-2',
    });
    rejects(valid, 'base', /trained from adapter/, { ...expect, baseAdapterSha256: '00'.repeat(32) });
    rejects(
      resealed((u) => (u.sampleCount = 0)),
      'samples',
      /sample count 0/,
    );
    rejects(
      resealed((u) => u.tensors.pop()),
      'tensors',
      /expected \[image.A, image.B, text.A, text.B\]/,
    );
    rejects(
      resealed((u) => (u.tensors[0].shape = [2, 8])),
      'tensors',
      /has shape \[2,8\], expected \[8,2\]/,
    );
    rejects(
      resealed((u) => (u.tensors[0].dtype = 9)),
      'dtype',
      /unknown element type 9/,
    );
    rejects(
      resealed((u) => (u.tensors[1].data = u.tensors[1].data.subarray(0, 10))),
      'size',
      /has 10 data bytes, expected 64/,
    );
    rejects(
      resealed((u) =>
        new DataView(u.tensors[2].data.buffer, u.tensors[2].data.byteOffset).setFloat32(4, Number.NaN, true),
      ),
      'non-finite',
      /NaN at index 1/,
    );
    rejects(encodeUpdate({ ...update, fisher: undefined }, { shapes }), 'fisher', /has no Fisher diagonal/);
    rejects(
      encodeUpdate({ ...update, fisher: new Map([...fisher].map(([k, v]) => [k, v.map((x) => -x - 1)])) }, { shapes }),
      'fisher',
      /negative entries/,
    );
    rejects(encodeUpdate({ ...update, clientId: '' }, { shapes }), 'client', /no client id/, {
      ...expect,
      clientId: undefined,
    });
  });

  test("heterogeneous ranks: a declared rank up to the federation's is accepted with its shapes, others refused", () => {
    const dModel = d;
    const low = initAdapters(d, { rank: 1, alpha: 4 }, 3);
    const lowFisher = new Map([...low].map(([k, v]) => [k, v.map((x) => x * x)]));
    const lowShapes = adapterShapes(d, 1);
    const lowUpdate = { ...update, weights: low, fisher: lowFisher, rank: 1 };
    const ranked: Expectation = { ...expect, rank: { dModel, max: cfg.rank } };
    const got = decodeUpdate(encodeUpdate(lowUpdate, { shapes: lowShapes }), ranked);
    assert.equal(got.rank, 1);
    assert.deepEqual(got.weights, low);
    // No declaration: the federation's rank and shapes.
    assert.equal(decodeUpdate(encodeUpdate(update, { shapes }), ranked).rank, cfg.rank);
    const big = initAdapters(d, { rank: 3, alpha: 4 }, 4);
    rejects(
      encodeUpdate({ ...update, weights: big, fisher: undefined, rank: 3 }, { shapes: adapterShapes(d, 3) }),
      'rank',
      /adapter rank 3 exceeds the federation's rank 2/,
      { ...ranked, requireFisher: false },
    );
    rejects(encodeUpdate(lowUpdate, { shapes: lowShapes }), 'rank', /this client's rank is 2/, {
      ...ranked,
      rank: { dModel, max: 2, expected: 2 },
    });
    // Shapes that do not match the declared rank.
    rejects(encodeUpdate({ ...update, rank: 1 }, { shapes }), 'tensors', /has shape \[8,2\], expected \[8,1\]/, ranked);
    // A round without per-client ranks refuses a declaration.
    rejects(encodeUpdate(lowUpdate, { shapes: lowShapes }), 'rank', /has no per-client ranks/);
  });

  test('fuzz: 100,000 random and mutated messages are rejected with a reason or decode to a valid update', () => {
    const random = rng(2024);
    const budget = { cases: 100_000, accepted: 0, byReason: new Map<string, number>() };
    const started = performance.now();
    for (let c = 0; c < budget.cases; c++) {
      let bytes: Uint8Array;
      const kind = c % 4;
      if (kind === 0) bytes = Uint8Array.from({ length: Math.floor(random() * 200) }, () => Math.floor(random() * 256));
      else {
        bytes = valid.slice();
        const edits = 1 + Math.floor(random() * 4);
        for (let k = 0; k < edits; k++) {
          const at = Math.floor(random() * bytes.length);
          if (kind === 1) bytes[at] = Math.floor(random() * 256);
          else if (kind === 2) bytes = bytes.subarray(0, at);
          else bytes = Uint8Array.from([...bytes.subarray(0, at), Math.floor(random() * 256), ...bytes.subarray(at)]);
        }
      }
      try {
        const u = decodeUpdate(bytes, expect);
        budget.accepted++;
        assert.deepEqual(u.weights, weights, 'an accepted mutation must carry the original tensors');
      } catch (e) {
        if (!(e instanceof UpdateRejected)) throw new Error(`case ${c}: ${(e as Error).name}: ${(e as Error).message}`);
        budget.byReason.set(e.reason, (budget.byReason.get(e.reason) ?? 0) + 1);
      }
    }
    const seconds = (performance.now() - started) / 1000;
    assert.ok(
      budget.byReason.get('checksum')! > 1000 && budget.byReason.get('malformed')! > 1000,
      JSON.stringify([...budget.byReason]),
    );
    assert.ok(seconds < 120, `fuzzing took ${seconds} s`);
  });
});
