import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { adapterShapes, initAdapters } from '@fednano/core';
import { NatsServer } from '@fednano/service-kit';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from './connect.js';
import { adapterObject, type FederationRef, progressSubject, UPDATES_STREAM, updateSubject } from './names.js';
import {
  createFederationIdentities,
  createNatsIdentity,
  type FederationIdentities,
  identityInboxPrefix,
  type NatsIdentity,
  natsAccountsConfig,
  natsIdentityFromSeed,
} from './nats-auth.js';
import { openRound, readRound } from './round.js';
import { ensureStorage, getAdapter, openStorage, putAdapter } from './storage.js';
import { publishUpdate } from './updates.js';

// Two federations, each its own account: A with clients a1 and a2, B with client b1.
const fedA: FederationRef = { namespace: 'team', federation: 'alpha' };
const fedB: FederationRef = { namespace: 'team', federation: 'beta' };
let idsA: FederationIdentities;
let idsB: FederationIdentities;
let server: NatsServer;
let dir: string;
const open: NatsConnection[] = [];
const shapes = adapterShapes(8, 2);
let baseSha: string;

async function connectAs(id: NatsIdentity, name: string): Promise<NatsConnection> {
  const file = join(dir, `${name}.nk`);
  await writeFile(file, `${id.seed}\n`, { mode: 0o400 });
  const nc = await connectNats({ servers: server.url, name, credsFile: file });
  open.push(nc);
  return nc;
}

/** The server's verdict on one publish: resolves when a flush round-trip passes, rejects on a permission error. */
async function publishVerdict(nc: NatsConnection, subject: string): Promise<'allowed' | 'denied'> {
  const denied = new Promise<'denied'>((resolve) => {
    (async () => {
      for await (const s of nc.status())
        if (s.type === 'error' && /permission/i.test(String(s.error)) && String(s.error).includes(subject))
          resolve('denied');
    })().catch(() => {});
  });
  nc.publish(subject, 'x');
  return Promise.race([
    denied,
    nc.flush().then(() => new Promise<'allowed'>((r) => setTimeout(() => r('allowed'), 150))),
  ]);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fednano-nats-auth-'));
  idsA = createFederationIdentities(fedA, ['a1', 'a2']);
  idsB = createFederationIdentities(fedB, ['b1']);
  server = await NatsServer.start({ authConfig: natsAccountsConfig([idsA, idsB]), maxPayload: 64 * 1024 });
  // The operator of each federation sets up its account's storage, round 0's adapter and round 1.
  for (const [ids, f] of [
    [idsA, fedA],
    [idsB, fedB],
  ] as const) {
    const op = await connectAs(ids.operator, `operator-${f.federation}`);
    const { kv, objects } = await ensureStorage(op);
    baseSha = await putAdapter(objects, adapterObject(f, 0), initAdapters(8, { rank: 2, alpha: 4 }, 0), shapes);
    await openRound(kv, {
      ...f,
      round: 1,
      participants: Object.keys(ids.clients),
      minClients: 1,
      baseAdapter: { object: adapterObject(f, 0), sha256: baseSha },
    } as Parameters<typeof openRound>[1]);
  }
});

after(async () => {
  for (const nc of open) await nc.close().catch(() => {});
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('identities: seeds parse back to their public keys, and anything else is refused clearly', () => {
  const id = createNatsIdentity();
  assert.match(id.publicKey, /^U[A-Z2-7]{55}$/);
  assert.deepEqual(natsIdentityFromSeed(`${id.seed}\n`), id);
  assert.throws(() => natsIdentityFromSeed('SUnot-a-seed'), /not a NATS user NKey seed/);
});

test('the server refuses connections without credentials and with an unknown key', async () => {
  await assert.rejects(connectNats({ servers: server.url, name: 'anonymous' }), /Authorization Violation/i);
  await assert.rejects(connectAs(createNatsIdentity(), 'stranger'), /Authorization Violation/i);
  const bad = join(dir, 'garbage.nk');
  await writeFile(bad, 'not a key');
  await assert.rejects(
    connectNats({ servers: server.url, name: 'garbage', credsFile: bad }),
    /neither a .creds file nor an NKey seed/,
  );
});

test('a client reads its round record and base adapter and publishes its own update, inline and by reference', async () => {
  const nc = await connectAs(idsA.clients.a1!, 'a1');
  const { kv, objects, uploads } = await openStorage(nc);
  const round = await readRound(kv, fedA, 1);
  assert.deepEqual(round?.doc.spec.participants, ['a1', 'a2']);
  await getAdapter(objects, adapterObject(fedA, 0), shapes, baseSha);
  const js = jetstream(nc);
  const inline = await publishUpdate(nc, js, uploads, fedA, 1, 'a1', new Uint8Array(1000).fill(1));
  assert.equal(inline.byReference, false);
  // Over max_payload (64 KiB): through the uploads bucket, which the client may write; a retry reuses the object.
  const big = new Uint8Array(200_000).fill(7);
  const ref = await publishUpdate(nc, js, uploads, fedA, 2, 'a1', big);
  assert.equal(ref.byReference, true);
  const again = await publishUpdate(nc, js, uploads, fedA, 2, 'a1', big);
  assert.equal(again.ack.duplicate, true);
  assert.equal(await publishVerdict(nc, progressSubject(fedA, 1, 'a1')), 'allowed');
});

test('a client cannot publish as another client, nor into another federation', async () => {
  const nc = await connectAs(idsA.clients.a1!, 'a1-impersonating');
  assert.equal(await publishVerdict(nc, updateSubject(fedA, 1, 'a2')), 'denied');
  assert.equal(await publishVerdict(nc, progressSubject(fedA, 1, 'a2')), 'denied');
  assert.equal(await publishVerdict(nc, updateSubject(fedB, 1, 'b1')), 'denied');
  // Through JetStream the publish fails rather than being acknowledged.
  await assert.rejects(jetstream(nc).publish(updateSubject(fedA, 1, 'a2'), new Uint8Array(4), { timeout: 2000 }));
});

test('a client cannot write round records or global adapters', async () => {
  const nc = await connectAs(idsA.clients.a2!, 'a2-tampering');
  const { kv, objects } = await openStorage(nc);
  await assert.rejects(kv.put(`${fedA.namespace}.${fedA.federation}.1`, '{}'), /permission|timeout/i);
  await assert.rejects(
    putAdapter(objects, adapterObject(fedA, 1), initAdapters(8, { rank: 2, alpha: 4 }, 9), shapes),
    /permission|timeout/i,
  );
  // The record and the adapter are untouched.
  const admin = await connectAs(idsA.operator, 'operator-check');
  const s = await openStorage(admin);
  assert.equal((await readRound(s.kv, fedA, 1))?.doc.status.state, 'Open');
  assert.equal(await s.objects.info(adapterObject(fedA, 1)), null);
});

test("a client cannot read another federation's adapters or rounds, nor other users' replies", async () => {
  const nc = await connectAs(idsA.clients.a1!, 'a1-snooping');
  const { kv, objects } = await openStorage(nc);
  // B's data lives in B's account: from A's account it does not exist.
  assert.equal(await readRound(kv, fedB, 1), undefined);
  assert.equal(await objects.info(adapterObject(fedB, 0)), null);
  // Subscriptions outside its own inbox are refused: other clients' updates, everything, other users' inboxes.
  for (const subject of [
    updateSubject(fedA, 1, 'a2'),
    '>',
    '_INBOX.>',
    `${identityInboxPrefix(idsA.clients.a2!.publicKey)}.>`,
  ]) {
    const sub = nc.subscribe(subject);
    const verdict = await Promise.race([
      sub.closed.then(() => 'denied' as const),
      (async () => {
        for await (const s of nc.status())
          if (s.type === 'error' && /permission/i.test(String(s.error)) && String(s.error).includes(subject))
            return 'denied' as const;
        return 'allowed' as const;
      })(),
      new Promise<'allowed'>((r) => setTimeout(() => r('allowed'), 1000)),
    ]);
    assert.equal(verdict, 'denied', `subscribe ${subject}`);
  }
  // B's client reading with its own identity sees its own federation only.
  const b = await connectAs(idsB.clients.b1!, 'b1');
  const sb = await openStorage(b);
  assert.deepEqual((await readRound(sb.kv, fedB, 1))?.doc.spec.participants, ['b1']);
  assert.equal(await readRound(sb.kv, fedA, 1), undefined);
});

test('the aggregator writes round records and adapters but cannot forge an update', async () => {
  const nc = await connectAs(idsA.aggregator, 'aggregator-a');
  const { kv, objects } = await ensureStorage(nc);
  await putAdapter(objects, adapterObject(fedA, 5), initAdapters(8, { rank: 2, alpha: 4 }, 5), shapes);
  await kv.put(`${fedA.namespace}.${fedA.federation}.99`, '{"probe":true}');
  assert.equal(await publishVerdict(nc, updateSubject(fedA, 1, 'a1')), 'denied');
  // Nor drop or purge the stream of updates it counts.
  const jsm = await jetstreamManager(nc, { timeout: 2000 });
  await assert.rejects(jsm.streams.purge(UPDATES_STREAM));
  await assert.rejects(jsm.streams.delete(UPDATES_STREAM));
  const admin = await connectAs(idsA.operator, 'operator-stream-check');
  assert.equal((await (await jetstreamManager(admin)).streams.info(UPDATES_STREAM)).state.messages > 0, true);
});
