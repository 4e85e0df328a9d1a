import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface OpsServerOptions {
  port: number;
  host?: string;
  registry: Registry;
  /** Ready to take work (e.g. model loaded, connected); `/readyz` answers 503 until then. */
  ready: () => boolean;
}

export interface OpsServer {
  port: number;
  close(): Promise<void>;
}

/** The operational HTTP endpoints every service has: `/metrics` (Prometheus), `/healthz` and `/readyz`. */
export async function startOpsServer(o: OpsServerOptions): Promise<OpsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/healthz') res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    else if (path === '/readyz') {
      const ok = o.ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ready\n' : 'not ready\n');
    } else if (path === '/debug/heap' && process.env.FEDNANO_DEBUG_HEAP === '1') {
      // For benchmarks and leak hunts only (off unless FEDNANO_DEBUG_HEAP=1): a full GC where the process was started
      // with --expose-gc, then the memory figures.
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ ...process.memoryUsage(), gc: !!gc }));
    } else if (path === '/metrics')
      o.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': o.registry.contentType }).end(text),
        (e: Error) => res.writeHead(500).end(e.message),
      );
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host ?? '0.0.0.0', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
