import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { adapterShapes, initAdapters, type LlmHost } from '@fednano/core';
import { createLogger, NatsServer, ServiceProcess } from '@fednano/service-kit';
import {
  adapterObject,
  connectNats,
  ensureStorage,
  type FederationStorage,
  openRound,
  putAdapter,
  type RoundSpec,
  updateRoundStatus,
} from '@fednano/wire';
import type { NatsConnection } from '@nats-io/nats-core';
import { AgentError, runClientRound } from './agent.js';

// What a client-agent does before it trains: refuse what it must not do, skip what is already done.
const ENTRY = fileURLToPath(new URL('../bin/client-agent.mjs', import.meta.url));
let server: NatsServer;
let nc: NatsConnection;
let storage: FederationStorage;
const f = { namespace: 'test', federation: 'agent' };
const log = createLogger('agent-test');
log.level = 'silent';
const noHost = {} as LlmHost; // never reached in these cases

before(async () => {
  server = await NatsServer.start();
  nc = await connectNats({ servers: server.url, name: 'test' });
  storage = await ensureStorage(nc);
  const shapes = adapterShapes(128, 4);
  const sha256 = await putAdapter(
    storage.objects,
    adapterObject(f, 0),
    initAdapters(128, { rank: 4, alpha: 8 }, 0),
    shapes,
  );
  const spec: RoundSpec = {
    ...f,
    round: 1,
    participants: ['client-0', 'client-1'],
    minClients: 1,
    deadline: new Date(Date.now() + 60_000).toISOString(),
    baseAdapter: { object: adapterObject(f, 0), sha256 },
    adapter: { rank: 4, alpha: 8 },
    dModel: 128,
    strategy: { name: 'fedavg' },
    training: { steps: 1, batchSize: 1, learningRate: 0.1, optimizer: 'sgd', fisherSamples: 1 },
    seeds: { 'client-0': 1, 'client-1': 2 },
    updateEncoding: 'float32',
  };
  await openRound(storage.kv, spec);
  await updateRoundStatus(storage.kv, f, 1, (d) => ({
    ...d.status,
    accepted: [{ client: 'client-1', seq: 1, samples: 1, loss: 1, bytes: 1 }],
  }));
});
after(async () => {
  await nc?.close();
  await server?.stop();
});

const opts = (client: string, round = 1) => ({
  ...f,
  round,
  client,
  modelPath: 'models/reference',
  dataPath: '/nonexistent',
  waitMs: 300,
  log,
});

test('an agent whose update was already counted does nothing (a restarted pod publishes no second update)', async () => {
  assert.deepEqual(await runClientRound(nc, noHost, opts('client-1')), { kind: 'already-counted' });
});

test('a client outside the round, or a round never opened, is a clear error', async () => {
  await assert.rejects(
    runClientRound(nc, noHost, opts('client-9')),
    (e: Error) => e instanceof AgentError && /client-9 is not a participant of round 1/.test(e.message),
  );
  await assert.rejects(
    runClientRound(nc, noHost, opts('client-0', 7)),
    /round 7 of test\/agent was not opened within 300 ms/,
  );
});

test('the process exits 1 with one clear line when its data is missing, and 2 on bad flags', async () => {
  const common = [
    '--retry-budget-ms',
    '1000',
    '--nats',
    server.url,
    '--namespace',
    'test',
    '--federation',
    'agent',
    '--model',
    'models/reference',
  ];
  const run = async (args: string[]) => {
    const p = ServiceProcess.start({ name: 'client-agent', entry: ENTRY, args: [...common, ...args] });
    return { ...(await p.exited), output: p.output };
  };
  const missing = await run(['--round', '1', '--client', 'client-0', '--data', '/nonexistent']);
  assert.equal(missing.code, 1);
  assert.match(missing.output, /fednano-client-agent: cannot read the client's data at \/nonexistent\/shard\.json/);
  const bad = await run(['--round', '0', '--client', 'client-0', '--data', 'x']);
  assert.equal(bad.code, 2);
  assert.match(bad.output, /--round must be 1 or more/);
});
