import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { after, before, test } from 'node:test';
import { FaultProxy } from './fault-proxy.js';

// The fault proxy against a local echo server: each fault does what it claims, and only that.
let echo: Server;
let echoPort: number;
const received: Buffer[] = []; // everything the echo server got, to show what a cut kept from it

before(async () => {
  echo = createServer((s) => {
    s.on('data', (b: Buffer) => {
      received.push(b);
      s.write(b);
    });
    s.on('error', () => {});
  });
  echoPort = await new Promise((resolve) =>
    echo.listen(0, '127.0.0.1', () => resolve((echo.address() as { port: number }).port)),
  );
});
after(() => new Promise<void>((r) => echo.close(() => r())));

const target = () => ({ host: '127.0.0.1', port: echoPort });

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** Reads `n` bytes from `s`, or rejects when the socket ends first. */
function read(s: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let got = 0;
    const onData = (b: Buffer) => {
      parts.push(b);
      got += b.length;
      if (got >= n) {
        s.off('data', onData);
        resolve(Buffer.concat(parts).subarray(0, n));
      }
    };
    s.on('data', onData);
    s.once('close', () => reject(new Error(`closed after ${got} of ${n} bytes`)));
    s.once('error', () => {});
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('passes bytes through unchanged, both ways', async () => {
  const p = await FaultProxy.start({ target: target() });
  try {
    const s = await open(p.port);
    const data = randomBytes(3 << 20);
    s.write(data);
    assert.equal(sha(await read(s, data.length)), sha(data));
    s.destroy();
    assert.equal(p.stats.bytesUp, data.length);
    assert.equal(p.stats.bytesDown, data.length);
  } finally {
    await p.close();
  }
});

test('latency delays each direction; a bandwidth cap spreads a large write over time', async () => {
  const p = await FaultProxy.start({ target: target(), shape: { latencyMs: 60 } });
  try {
    const s = await open(p.port);
    let t0 = performance.now();
    s.write('ping');
    await read(s, 4);
    const rtt = performance.now() - t0;
    assert.ok(rtt >= 118 && rtt < 600, `round trip ${rtt.toFixed(0)} ms with 60 ms each way`);

    p.shape({ bytesPerSecond: 1_000_000 });
    const data = randomBytes(200_000);
    t0 = performance.now();
    s.write(data);
    assert.equal(sha(await read(s, data.length)), sha(data));
    const took = performance.now() - t0;
    // 200 kB at 1 MB/s is 200 ms per direction; the two directions overlap piece by piece.
    assert.ok(took >= 190 && took < 1500, `200 kB at 1 MB/s took ${took.toFixed(0)} ms`);
    s.destroy();
  } finally {
    await p.close();
  }
});

test('drop resets open connections and refuses new ones for a while, then lets them through', async () => {
  const p = await FaultProxy.start({ target: target() });
  try {
    const s = await open(p.port);
    const closed = new Promise<string>((resolve) => {
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      s.once('close', () => resolve('closed'));
    });
    assert.equal(p.drop(400), 1);
    assert.match(await closed, /ECONNRESET|closed/);
    // Reset at once: the connect itself may fail, or the socket closes before any byte.
    await assert.rejects(
      open(p.port).then((during) => read(during, 1)),
      /ECONNRESET|closed after 0/,
    );
    await new Promise((r) => setTimeout(r, 450));
    const later = await open(p.port);
    later.write('back');
    assert.equal((await read(later, 4)).toString(), 'back');
    later.destroy();
    assert.equal(p.stats.resets, 2);
  } finally {
    await p.close();
  }
});

test('blackhole holds bytes and new connections, and delivers them in order when it ends', async () => {
  const p = await FaultProxy.start({ target: target() });
  try {
    const s = await open(p.port);
    const healed = p.blackhole(300);
    const t0 = performance.now();
    s.write('one-');
    const late = await open(p.port); // accepted, not connected upstream until the hole closes
    late.write('late');
    s.write('two');
    const [a, b] = await Promise.all([read(s, 7), read(late, 4)]);
    const waited = performance.now() - t0;
    await healed;
    assert.equal(a.toString(), 'one-two');
    assert.equal(b.toString(), 'late');
    assert.ok(waited >= 290, `delivered after ${waited.toFixed(0)} ms of a 300 ms blackhole`);
    assert.equal(p.stats.resets, 0, 'nothing was refused');
    s.destroy();
    late.destroy();
  } finally {
    await p.close();
  }
});

test('a tap cuts the connection at a chosen moment: the matching chunk never reaches the other side', async () => {
  const p = await FaultProxy.start({ target: target() });
  p.tap = (dir, chunk) => (dir === 'up' && chunk.includes('SECRET') ? 'cut' : 'pass');
  try {
    received.length = 0;
    const s = await open(p.port);
    s.write('hello');
    assert.equal((await read(s, 5)).toString(), 'hello');
    const closed = new Promise((r) => s.once('close', r));
    s.on('error', () => {});
    s.write('SECRET');
    await closed;
    assert.equal(Buffer.concat(received).toString(), 'hello', 'the echo server never saw the cut chunk');
    assert.equal(p.stats.resets, 1);
  } finally {
    await p.close();
  }
});
