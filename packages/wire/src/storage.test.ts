import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { adapterShapes, initAdapters } from '@fednano/core';
import { NatsServer } from '@fednano/service-kit';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { adapterObject, dedupeId, parseUpdateSubject, updateSubject } from './names.js';
import { openRound, type RoundSpec, readRound, updateRoundStatus } from './round.js';
import { decodeAdapter, encodeAdapter, ensureStorage, getAdapter, putAdapter } from './storage.js';

let server: NatsServer;
let nc: NatsConnection;
const fed = { namespace: 'default', federation: 'demo' };

before(async () => {
  server = await NatsServer.start();
  nc = await connect({ servers: server.url });
});
after(async () => {
  await nc?.close();
  await server?.stop();
});

test('adapters round-trip through the Object Store with their content hash checked', async () => {
  const { objects } = await ensureStorage(nc);
  const shapes = adapterShapes(8, 2);
  const w = initAdapters(8, { rank: 2, alpha: 4 }, 1);
  w.get('image.B')![3] = 0.5;
  assert.deepEqual(decodeAdapter(encodeAdapter(w, shapes), shapes), w);
  const sha = await putAdapter(objects, adapterObject(fed, 0), w, shapes);
  assert.deepEqual(await getAdapter(objects, adapterObject(fed, 0), shapes, sha), w);
  await assert.rejects(getAdapter(objects, adapterObject(fed, 0), shapes, '0'.repeat(64)), /has sha256 .* expected 0+/);
  await assert.rejects(getAdapter(objects, adapterObject(fed, 9), shapes, sha), /is not in the fednano-adapters/);
});

test('the stream drops a second publish with the same message id', async () => {
  await ensureStorage(nc);
  await ensureStorage(nc); // idempotent
  const js = jetstream(nc);
  const subject = updateSubject(fed, 1, 'client-0');
  assert.deepEqual(parseUpdateSubject(subject), { ...fed, round: 1, client: 'client-0' });
  const first = await js.publish(subject, new Uint8Array([1]), { msgID: dedupeId(fed, 1, 'client-0') });
  const second = await js.publish(subject, new Uint8Array([2]), { msgID: dedupeId(fed, 1, 'client-0') });
  assert.equal(first.duplicate, false);
  assert.equal(second.duplicate, true);
  assert.equal(second.seq, first.seq);
  const jsm = await jetstreamManager(nc);
  const stored = await jsm.streams.getMessage('FEDNANO_UPDATES', { seq: first.seq });
  assert.deepEqual([...stored!.data], [1]);
});

test('round status updates are compare-and-set and survive concurrent writers', async () => {
  const { kv } = await ensureStorage(nc);
  const spec = { ...fed, round: 3, participants: ['a', 'b'], minClients: 1 } as unknown as RoundSpec;
  await openRound(kv, spec);
  await assert.rejects(openRound(kv, spec), /wrong last sequence|exists/i);
  await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      updateRoundStatus(kv, fed, 3, (d) => ({ ...d.status, duplicates: d.status.duplicates + 1, message: `${i}` })),
    ),
  );
  const r = await readRound(kv, fed, 3);
  assert.equal(r?.doc.status.duplicates, 8);
  assert.equal(r?.doc.status.state, 'Open');
});
