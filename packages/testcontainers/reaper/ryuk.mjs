// @ts-check
/**
 * A Ryuk-compatible reaper (the protocol of testcontainers/moby-ryuk, which testcontainers for Node speaks) in plain
 * Node.js with no dependencies, so that its image builds FROM node:20-bookworm-slim (or the local stand-in) where
 * `testcontainers/ryuk` cannot be pulled. docker/reaper.Dockerfile packages it; @fednano/testcontainers points
 * testcontainers at that image through RYUK_CONTAINER_IMAGE.
 *
 * Protocol: TCP on RYUK_PORT (8080). A client sends lines `label=key=value[&label=k2=v2...]` (a URL query; the
 * filters of one line must all match, any line may match); each line is answered `ACK\n` (`ERROR ...\n` when it
 * cannot be parsed). While any connection is open nothing happens. RYUK_RECONNECTION_TIMEOUT (10s) after the last
 * connection closed, or RYUK_CONNECTION_TIMEOUT (60s) after start when nobody ever connected, or on SIGTERM/SIGINT, it
 * removes, through the Docker Engine API on /var/run/docker.sock (or DOCKER_HOST unix:// or tcp://), every container
 * (forced, with its anonymous volumes), network, volume and image matching a filter line, and exits. Its own
 * container is left alone (testcontainers runs it with AutoRemove). Logs one line per event; "Started" once listening.
 *
 * Durations take Go's forms (`10s`, `500ms`, `1m30s`) or plain seconds.
 */
import { request } from 'node:http';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';

/** @param {string | undefined} text @param {number} fallbackMs */
export function parseDuration(text, fallbackMs) {
  if (text === undefined || text.trim() === '') return fallbackMs;
  if (/^\d+(\.\d+)?$/.test(text.trim())) return Number(text) * 1000;
  const units = /** @type {Record<string, number>} */ ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 });
  let ms = 0;
  let rest = text.trim();
  while (rest !== '') {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)/.exec(rest);
    if (!m) throw new Error(`not a duration: '${text}' (use e.g. 10s, 500ms, 1m)`);
    ms += Number(m[1]) * /** @type {number} */ (units[m[2] ?? 's']);
    rest = rest.slice(m[0].length);
  }
  return ms;
}

/**
 * One filter line → Docker API filters ({ label: ['k=v', ...] }). Throws on a line that is not `key=value&...`.
 * @param {string} line
 * @returns {Record<string, string[]>}
 */
export function parseFilterLine(line) {
  const trimmed = line.trim();
  if (trimmed === '') throw new Error('empty filter');
  /** @type {Record<string, string[]>} */
  const filters = {};
  for (const part of trimmed.split('&')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`filter '${part}' is not key=value`);
    const key = decodeURIComponent(part.slice(0, eq));
    const value = decodeURIComponent(part.slice(eq + 1).replace(/\+/g, ' '));
    (filters[key] ??= []).push(value);
  }
  return filters;
}

/**
 * A minimal Docker Engine API client over a unix socket or TCP (no TLS).
 * @param {string} [dockerHost]
 */
export function dockerApi(dockerHost = process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock') {
  /** @type {{ socketPath?: string; host?: string; port?: number }} */
  const target = dockerHost.startsWith('unix://')
    ? { socketPath: dockerHost.slice('unix://'.length) }
    : (() => {
        const u = new URL(dockerHost.replace(/^tcp:/, 'http:'));
        return { host: u.hostname, port: Number(u.port || 2375) };
      })();
  /**
   * @param {string} method
   * @param {string} path
   * @returns {Promise<{ status: number; body: string }>}
   */
  const call = (method, path) =>
    new Promise((resolve, reject) => {
      const req = request({ ...target, method, path, timeout: 30_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
      req.on('error', reject);
      req.end();
    });
  /** @param {string} path */
  const json = async (path) => {
    const r = await call('GET', path);
    if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${r.body.trim()}`);
    return JSON.parse(r.body);
  };
  /** @param {Record<string, string[]>} f */
  const q = (f) => `filters=${encodeURIComponent(JSON.stringify(f))}`;
  return {
    ping: () => call('GET', '/_ping'),
    /** @param {Record<string, string[]>} f @returns {Promise<string[]>} */
    containers: async (f) => (await json(`/containers/json?all=true&${q(f)}`)).map((/** @type {any} */ c) => c.Id),
    /** @param {Record<string, string[]>} f @returns {Promise<string[]>} */
    networks: async (f) => (await json(`/networks?${q(f)}`)).map((/** @type {any} */ n) => n.Id),
    /** @param {Record<string, string[]>} f @returns {Promise<string[]>} */
    volumes: async (f) => ((await json(`/volumes?${q(f)}`)).Volumes ?? []).map((/** @type {any} */ v) => v.Name),
    /** @param {Record<string, string[]>} f @returns {Promise<string[]>} */
    images: async (f) => (await json(`/images/json?${q(f)}`)).map((/** @type {any} */ i) => i.Id),
    /** @param {'containers' | 'networks' | 'volumes' | 'images'} kind @param {string} id */
    remove: async (kind, id) => {
      const path =
        kind === 'containers'
          ? `/containers/${id}?force=true&v=true`
          : kind === 'images'
            ? `/images/${id}?force=true&noprune=false`
            : `/${kind}/${id}`;
      const r = await call('DELETE', path);
      // 404: already gone; 409 (removal in progress) counts as not yet gone.
      if (r.status >= 300 && r.status !== 404) throw new Error(`DELETE ${path}: ${r.status} ${r.body.trim()}`);
    },
  };
}

/**
 * @typedef {object} ReaperOptions
 * @property {number} [port] TCP port (0: any); default RYUK_PORT or 8080
 * @property {string} [host] bind address; default all
 * @property {number} [connectionTimeoutMs] reap when nobody connected this long after start (RYUK_CONNECTION_TIMEOUT)
 * @property {number} [reconnectionTimeoutMs] reap this long after the last connection closed (RYUK_RECONNECTION_TIMEOUT)
 * @property {number} [removeRetries] passes over the resources while some removal fails (RYUK_REMOVE_RETRIES)
 * @property {string} [dockerHost] as DOCKER_HOST
 * @property {string} [self] this reaper's own container id (prefix), never removed; default the hostname
 * @property {(line: string) => void} [log]
 */

/**
 * Starts the reaper. `done` resolves with what was removed once it has reaped (it stops listening then).
 * @param {ReaperOptions} [o]
 */
export async function startReaper(o = {}) {
  const log = o.log ?? ((line) => process.stdout.write(`${new Date().toISOString()} ${line}\n`));
  const api = dockerApi(o.dockerHost);
  const self = o.self ?? hostname();
  const connectionTimeoutMs = o.connectionTimeoutMs ?? parseDuration(process.env.RYUK_CONNECTION_TIMEOUT, 60_000);
  const reconnectionTimeoutMs = o.reconnectionTimeoutMs ?? parseDuration(process.env.RYUK_RECONNECTION_TIMEOUT, 10_000);
  const removeRetries = o.removeRetries ?? Number(process.env.RYUK_REMOVE_RETRIES ?? 10);
  /** @type {Map<string, Record<string, string[]>>} */
  const filters = new Map();
  let connections = 0;
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  /** @type {(r: { containers: number; networks: number; volumes: number; images: number }) => void} */
  let finish = () => {};
  /** @type {Promise<{ containers: number; networks: number; volumes: number; images: number }>} */
  const done = new Promise((r) => {
    finish = r;
  });
  let reaping = false;

  const server = createServer((socket) => {
    connections++;
    if (timer) clearTimeout(timer);
    timer = undefined;
    log(`Client connected: ${socket.remoteAddress}:${socket.remotePort} (${connections} open)`);
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      buffered += chunk;
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl).replace(/\r$/, '');
        buffered = buffered.slice(nl + 1);
        if (line.trim() === '') continue;
        try {
          const f = parseFilterLine(line);
          if (!filters.has(line)) {
            filters.set(line, f);
            log(`Adding filter: ${line}`);
          }
          socket.write('ACK\n');
        } catch (e) {
          log(`Bad filter line '${line}': ${/** @type {Error} */ (e).message}`);
          socket.write(`ERROR ${/** @type {Error} */ (e).message}\n`);
        }
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      connections--;
      log(`Client disconnected (${connections} open)`);
      if (connections === 0 && !reaping) arm(reconnectionTimeoutMs, 'no client reconnected');
    });
  });

  /** @param {number} ms @param {string} why */
  const arm = (ms, why) => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void reap(`${why} within ${ms} ms`), ms);
  };

  /** Removes what the filters match: containers, then networks, volumes and images; passes again while some fail. */
  const reap = async (/** @type {string} */ why) => {
    if (reaping) return;
    reaping = true;
    if (timer) clearTimeout(timer);
    server.close();
    log(`Reaping: ${why}; ${filters.size} filter(s)`);
    const removed = { containers: 0, networks: 0, volumes: 0, images: 0 };
    for (const kind of /** @type {const} */ (['containers', 'networks', 'volumes', 'images'])) {
      for (let pass = 0; pass <= removeRetries; pass++) {
        let failed = 0;
        for (const f of filters.values()) {
          let ids = [];
          try {
            ids = await api[kind](f);
          } catch (e) {
            log(`Listing ${kind} failed: ${/** @type {Error} */ (e).message}`);
            failed++;
            continue;
          }
          for (const id of ids) {
            if (kind === 'containers' && self !== '' && id.startsWith(self)) continue;
            try {
              await api.remove(kind, id);
              removed[kind]++;
              log(`Removed ${kind.slice(0, -1)} ${id.slice(0, 12)}`);
            } catch (e) {
              failed++;
              log(`Removing ${kind.slice(0, -1)} ${id.slice(0, 12)} failed: ${/** @type {Error} */ (e).message}`);
            }
          }
        }
        if (failed === 0) break;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    log(
      `Removed ${removed.containers} container(s), ${removed.networks} network(s), ${removed.volumes} volume(s), ${removed.images} image(s)`,
    );
    finish(removed);
  };

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? Number(process.env.RYUK_PORT ?? 8080), o.host, () => resolve(undefined));
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const ping = await api.ping().catch((e) => ({ status: 0, body: String(e.message) }));
  if (ping.status !== 200) log(`Warning: the Docker API does not answer /_ping: ${ping.status} ${ping.body}`);
  log(
    `Started: listening on :${port}; reaping ${reconnectionTimeoutMs} ms after the last client leaves (${connectionTimeoutMs} ms if none connects)`,
  );
  arm(connectionTimeoutMs, 'no client connected');
  return {
    port,
    done,
    /** Reaps now (as on SIGTERM). */
    reap: () => reap('asked to').then(() => done),
    /** Stops without removing anything (for tests). */
    close: () => {
      reaping = true;
      if (timer) clearTimeout(timer);
      server.close();
    },
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const reaper = await startReaper();
  for (const signal of /** @type {const} */ (['SIGTERM', 'SIGINT']))
    process.once(signal, () => void reaper.reap().then(() => process.exit(0)));
  await reaper.done;
  process.exit(0);
}
