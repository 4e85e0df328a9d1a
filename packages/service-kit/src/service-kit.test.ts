import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { envName, FlagError, flagHelp, parseFlags } from './flags.js';
import { findNatsServer, NatsServer, NatsServerNotFound } from './nats-server.js';
import { startOpsServer } from './ops-server.js';
import { httpStatus, httpText } from './service-process.js';

const SPECS = {
  federation: { type: 'string', description: 'Federation name', required: true },
  'ops-port': { type: 'number', description: 'HTTP port', default: 9090 },
  verbose: { type: 'boolean', description: 'More logs' },
} as const;

test('flags: --name value, --name=value, booleans, FEDNANO_* environment, defaults; flags win over env', () => {
  assert.equal(envName('ops-port'), 'FEDNANO_OPS_PORT');
  assert.deepEqual(parseFlags(SPECS, ['--federation', 'a', '--verbose'], {}), {
    federation: 'a',
    'ops-port': 9090,
    verbose: true,
  });
  assert.deepEqual(parseFlags(SPECS, ['--ops-port=1'], { FEDNANO_FEDERATION: 'b', FEDNANO_OPS_PORT: '2' }), {
    federation: 'b',
    'ops-port': 1,
  });
  assert.match(
    flagHelp('x', 'does x', SPECS),
    /--ops-port <number>\n\s+FEDNANO_OPS_PORT {2}HTTP port \(default: 9090\)/,
  );
});

test('flags: unknown, missing, and malformed values are clear errors', () => {
  assert.throws(() => parseFlags(SPECS, ['--federation', 'a', '--colour', 'x'], {}), /unknown option --colour/);
  assert.throws(
    () => parseFlags(SPECS, [], {}),
    (e: Error) => e instanceof FlagError && /--federation \(or FEDNANO_FEDERATION\) is required/.test(e.message),
  );
  assert.throws(
    () => parseFlags(SPECS, ['--federation', 'a'], { FEDNANO_OPS_PORT: 'x' }),
    /FEDNANO_OPS_PORT must be a number, got 'x'/,
  );
  assert.throws(() => parseFlags(SPECS, ['--federation'], {}), /--federation needs a value/);
  assert.throws(() => parseFlags(SPECS, ['stray'], {}), /unexpected argument 'stray'/);
});

test('a missing nats-server binary is an error that names the package to install', () => {
  assert.throws(
    () => findNatsServer({ PATH: '/nonexistent' }, []),
    (e: Error) => e instanceof NatsServerNotFound && /apt-get install -y nats-server/.test(e.message),
  );
  assert.throws(() => findNatsServer({ FEDNANO_NATS_SERVER: '/no/such/nats' }), /does not exist/);
});

test('a private nats-server survives kill and restart on the same port and store', async () => {
  const s = await NatsServer.start({ maxPayload: 4096 });
  try {
    await s.kill();
    await s.restart();
    assert.match(s.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
  } finally {
    await s.stop();
  }
});

test('ops server: /healthz always, /readyz only when ready, /metrics in Prometheus text', async () => {
  let ready = false;
  const registry = new Registry();
  const ops = await startOpsServer({ port: 0, host: '127.0.0.1', registry, ready: () => ready });
  try {
    const url = (p: string) => `http://127.0.0.1:${ops.port}${p}`;
    assert.equal(await httpStatus(url('/healthz')), 200);
    assert.equal(await httpStatus(url('/readyz')), 503);
    ready = true;
    assert.equal(await httpStatus(url('/readyz')), 200);
    assert.equal(await httpStatus(url('/nope')), 404);
    assert.equal(await httpStatus(url('/debug/heap')), 404, 'the heap probe is off unless asked for');
    process.env.FEDNANO_DEBUG_HEAP = '1';
    const heap = JSON.parse(await httpText(url('/debug/heap'))) as { heapUsed: number; gc: boolean };
    delete process.env.FEDNANO_DEBUG_HEAP;
    assert.ok(heap.heapUsed > 0);
    assert.equal(typeof (await httpText(url('/metrics'))), 'string');
  } finally {
    await ops.close();
  }
});
