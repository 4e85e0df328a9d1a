import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * The kubelet's HTTPS server, for `kubectl logs`: the API server proxies `pods/log` to
 * `https://<node address>:<daemonEndpoints.kubeletEndpoint.Port>/containerLogs/<ns>/<pod>/<container>` (tailLines,
 * follow, timestamps ignored). One server for all of this kubelet's nodes, on 127.0.0.1 with a self-signed
 * certificate (the API server verifies it only with --kubelet-certificate-authority). The API server must pick the
 * InternalIP (`--kubelet-preferred-address-types=InternalIP`): the Hostname address is the node name, which does
 * not resolve here.
 */
const exec = promisify(execFile);

export interface ContainerLog {
  lines: readonly string[];
  /** Calls `f` with each new line until the returned function is called or the container ends (`f(undefined)`). */
  follow(f: (line: string | undefined) => void): () => void;
}

export class KubeletServer {
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(logs: (namespace: string, pod: string, container: string) => ContainerLog | undefined) {
    const dir = await mkdtemp(join(tmpdir(), 'fednano-kubelet-tls-'));
    try {
      await exec('openssl', [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '3',
        '-subj',
        '/CN=fednano-kubelet',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ]);
      const [key, cert] = await Promise.all([readFile(join(dir, 'key.pem')), readFile(join(dir, 'cert.pem'))]);
      const server = createServer({ key, cert }, (req, res) => {
        const url = new URL(req.url ?? '/', 'https://kubelet');
        const m = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
        if (url.pathname === '/healthz') return void res.end('ok');
        const log = m
          ? logs(decodeURIComponent(m[1]!), decodeURIComponent(m[2]!), decodeURIComponent(m[3]!))
          : undefined;
        if (!log) {
          res.statusCode = 404;
          return void res.end(m ? `container ${m[3]} of pod ${m[1]}/${m[2]} is not on this kubelet\n` : 'not found\n');
        }
        res.setHeader('Content-Type', 'text/plain');
        const tail = url.searchParams.get('tailLines');
        const lines = tail === null ? log.lines : log.lines.slice(-Math.max(0, Number(tail)));
        for (const l of lines) res.write(`${l}\n`);
        if (url.searchParams.get('follow') !== 'true') return void res.end();
        const stop = log.follow((line) => (line === undefined ? res.end() : res.write(`${line}\n`)));
        res.on('close', stop);
      });
      const port = await new Promise<number>((resolve) =>
        server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
      );
      return new KubeletServer(server, port);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  close(): void {
    this.server.closeAllConnections();
    this.server.close();
  }
}
