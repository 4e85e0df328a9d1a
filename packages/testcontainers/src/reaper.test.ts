import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseDuration, parseFilterLine, startReaper } from '../reaper/ryuk.mjs';
import { buildReaperImage, EMBEDDED_REAPER_DOCKERFILE, REAPER_DOCKERFILE } from './reaper.js';

const execFileAsync = promisify(execFile);
const docker = async (...args: string[]) =>
  (await execFileAsync('docker', args, { encoding: 'utf8', timeout: 60_000 })).stdout.trim();

/** Why the engine tests cannot run here, or undefined. */
async function engineProblem(): Promise<string | undefined> {
  try {
    await docker('version', '--format', '{{.Server.Os}}');
  } catch (e) {
    return `no usable docker engine (${String((e as Error).message).split('\n')[0]})`;
  }
  // The suites' images are the ones to label and reap; any local image with sleep does.
  const present = (image: string) =>
    docker('image', 'inspect', image).then(
      () => true,
      () => false,
    );
  for (const image of ['fednano/nats:0.1.0', 'debian:bookworm-slim', 'node:20-bookworm-slim']) {
    if (await present(image)) {
      IMAGE = image;
      return undefined;
    }
  }
  return 'no local image to run (build one: bash scripts/base-images.sh)';
}
let IMAGE = '';
const skip = await engineProblem();
if (skip) process.stderr.write(`\n*** SKIPPED the reaper's engine tests: ${skip} ***\n\n`);

const gone = async (kind: 'container' | 'network', id: string) =>
  docker(kind, 'inspect', id).then(
    () => false,
    () => true,
  );
async function waitGone(kind: 'container' | 'network', id: string, ms: number): Promise<number> {
  const t0 = Date.now();
  while (!(await gone(kind, id))) {
    if (Date.now() - t0 > ms) throw new Error(`${kind} ${id} still there after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return Date.now() - t0;
}

describe('reaper protocol parsing', () => {
  test('filter lines: label=key=value, & joins filters of one line', () => {
    assert.deepEqual(parseFilterLine('label=org.testcontainers.session-id=abc\r'), {
      label: ['org.testcontainers.session-id=abc'],
    });
    assert.deepEqual(parseFilterLine('label=a=1&label=b=2&name=x'), { label: ['a=1', 'b=2'], name: ['x'] });
    assert.throws(() => parseFilterLine('nonsense'), /not key=value/);
    assert.throws(() => parseFilterLine('  '), /empty/);
  });

  test("durations in Go's forms or seconds", () => {
    assert.equal(parseDuration('10s', 0), 10_000);
    assert.equal(parseDuration('1m30s', 0), 90_000);
    assert.equal(parseDuration('500ms', 0), 500);
    assert.equal(parseDuration('2', 0), 2000);
    assert.equal(parseDuration(undefined, 7), 7);
    assert.throws(() => parseDuration('soon', 0), /not a duration/);
  });

  test('docker/reaper.Dockerfile says what the package embeds for installs outside the repository', () => {
    const instructions = (text: string) =>
      text
        .split('\n')
        .filter((l) => l.trim() !== '' && !l.startsWith('#'))
        .join('\n');
    assert.equal(instructions(readFileSync(REAPER_DOCKERFILE, 'utf8')), instructions(EMBEDDED_REAPER_DOCKERFILE));
  });
});

describe('reaper against the engine', { skip: skip ? `SKIPPED: ${skip}` : false, timeout: 180_000 }, () => {
  test('answers ACK per filter line; after the last client leaves, removes the labelled container and network only', async () => {
    const label = `io.fednano.reaper-test=${process.pid}-${Date.now()}`;
    const network = await docker('network', 'create', '--label', label, `fednano-reaper-test-${process.pid}`);
    const victim = await docker(
      'run',
      '-d',
      '--label',
      label,
      '--network',
      network,
      '--entrypoint',
      'sleep',
      IMAGE,
      '600',
    );
    const bystander = await docker('run', '-d', '--entrypoint', 'sleep', IMAGE, '600');
    const lines: string[] = [];
    const reaper = await startReaper({
      port: 0,
      host: '127.0.0.1',
      reconnectionTimeoutMs: 500,
      connectionTimeoutMs: 30_000,
      self: '',
      log: (l) => lines.push(l),
    });
    try {
      const socket = connect(reaper.port, '127.0.0.1');
      const acks: string[] = [];
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => acks.push(...d.split('\n').filter(Boolean)));
      await new Promise<void>((r) => socket.once('connect', () => r()));
      socket.write(`label=${label}\r\n`);
      socket.write('garbage\n');
      while (acks.length < 2) await new Promise((r) => setTimeout(r, 20));
      assert.equal(acks[0], 'ACK');
      assert.match(acks[1]!, /^ERROR /);
      // Nothing happens while the client is connected.
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(await gone('container', victim), false);
      socket.end();
      const removed = await reaper.done;
      assert.equal(removed.containers, 1);
      assert.equal(removed.networks, 1);
      assert.equal(await gone('container', victim), true);
      assert.equal(await gone('network', network), true);
      assert.equal(await gone('container', bystander), false, 'an unlabelled container stays');
      assert.ok(lines.some((l) => l.startsWith('Started')));
    } finally {
      reaper.close();
      await docker('rm', '-f', victim, bystander).catch(() => {});
      await docker('network', 'rm', network).catch(() => {});
    }
  });

  test('buildReaperImage: the classic builder through the Engine API, FROM the local node image, in seconds', async (t) => {
    const base = process.env.NODE_IMAGE ?? 'node:20-bookworm-slim';
    if (
      !(await docker('image', 'inspect', base).then(
        () => true,
        () => false,
      ))
    )
      return t.skip(`SKIPPED: no ${base} here (bash scripts/base-images.sh makes a stand-in)`);
    const ref = `fednano/reaper:test-${process.pid}`;
    const t0 = Date.now();
    try {
      assert.equal(await buildReaperImage(ref), ref);
      const entry = await docker('image', 'inspect', '-f', '{{json .Config.Entrypoint}}', ref);
      assert.deepEqual(JSON.parse(entry), ['node', '/reaper/ryuk.mjs']);
      process.stderr.write(`reaper: image built in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    } finally {
      await docker('rmi', '-f', ref).catch(() => {});
    }
  });

  test('testcontainers starts the package reaper image (no pull) and it reaps a session whose process died', async () => {
    // A child process starts a container and a network through testcontainers and exits without stopping them.
    const script = `
      // testcontainers first, as a user's suite may import it: it has read RYUK_CONTAINER_IMAGE (unset) already.
      const { GenericContainer, Network, getReaper, getContainerRuntimeClient } = await import('testcontainers');
      const { prepareReaper } = await import('@fednano/testcontainers');
      const mode = await prepareReaper();
      const network = await new Network().start();
      const c = await new GenericContainer(${JSON.stringify(IMAGE)}).withEntrypoint(['sleep']).withCommand(['600'])
        .withNetwork(network).start();
      const reaper = await getReaper(await getContainerRuntimeClient());
      console.log(JSON.stringify({ mode, container: c.getId(), network: network.getId(), reaper: reaper.containerId }));
      process.exit(0);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      // A short grace period keeps the test quick; a reaper another session left running is not reused.
      env: {
        ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'RYUK_CONTAINER_IMAGE')),
        TESTCONTAINERS_RYUK_RECONNECTION_TIMEOUT: '1s',
        TESTCONTAINERS_RYUK_TEST_LABEL: 'true',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    assert.equal(code, 0, err);
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as {
      mode: string;
      container: string;
      network: string;
      reaper: string;
    };
    assert.equal(r.mode, 'ready');
    const image = await docker('inspect', '-f', '{{.Config.Image}}', r.reaper).catch(() => 'already gone');
    assert.ok(image === 'fednano/reaper:0.1.0' || image === 'already gone', image);
    const ms = await waitGone('container', r.container, 60_000);
    await waitGone('network', r.network, 10_000);
    await waitGone('container', r.reaper, 10_000); // AutoRemove once it exits
    process.stderr.write(`reaper: session container and network removed ${ms} ms after the process exited\n`);
  });
});
