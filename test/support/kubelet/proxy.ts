import { createServer, type Server, connect as tcpConnect } from 'node:net';
import type { V1Service } from '@kubernetes/client-node';

/**
 * kube-proxy's part: each Service port gets a stable local TCP port that forwards every connection to a Ready
 * backend (the host port of a selected pod's target port, named or numbered). `<svc>.<ns>.svc[.cluster.local]:<port>`
 * in a container's args and env resolves to it (`resolveServices`).
 */
export interface Backend {
  namespace: string;
  labels: Record<string, string>;
  ready: boolean;
  /** containerPort -> the host port it is reachable at. */
  ports: Map<number, number>;
  /** Port names of the container (`ops` -> 8080). */
  portNames: Map<string, number>;
}

export class ServiceProxies {
  private readonly proxies = new Map<string, { server: Server; port: number }>();

  constructor(
    private readonly backends: () => Iterable<Backend>,
    /** Where the proxies listen (containers reach them through the Docker runtime's gateway forwarders). */
    private readonly host = '127.0.0.1',
  ) {}

  async sync(services: readonly V1Service[]): Promise<void> {
    for (const s of services) {
      for (const port of s.spec?.ports ?? []) {
        const id = `${s.metadata!.namespace}/${s.metadata!.name}:${port.port}`;
        if (this.proxies.has(id)) continue;
        const backend = () => {
          for (const b of this.backends()) {
            if (!b.ready || b.namespace !== s.metadata!.namespace) continue;
            const selector = Object.entries(s.spec?.selector ?? {});
            if (selector.length === 0 || !selector.every(([k, v]) => b.labels[k] === v)) continue;
            const target = port.targetPort ?? port.port;
            const containerPort =
              typeof target === 'number' || /^\d+$/.test(String(target))
                ? Number(target)
                : b.portNames.get(String(target));
            const to = containerPort === undefined ? undefined : b.ports.get(containerPort);
            if (to) return to;
          }
          return undefined;
        };
        const server = createServer((socket) => {
          const to = backend();
          if (!to) return socket.destroy();
          const upstream = tcpConnect(to, '127.0.0.1');
          socket.pipe(upstream).pipe(socket);
          const close = () => {
            socket.destroy();
            upstream.destroy();
          };
          socket.on('error', close);
          upstream.on('error', close);
        });
        const local = await new Promise<number>((resolve) =>
          server.listen(0, this.host, () => resolve((server.address() as { port: number }).port)),
        );
        this.proxies.set(id, { server, port: local });
      }
    }
  }

  port(namespace: string, service: string, port: number): number | undefined {
    return this.proxies.get(`${namespace}/${service}:${port}`)?.port;
  }

  /** Replaces `<svc>.<ns>.svc[.cluster.local]:<port>` with `<host>:<proxy port>` where the Service is proxied. */
  resolveServices(value: string, host = '127.0.0.1'): string {
    return value.replace(/\b([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)\b/g, (all, svc, ns, p) => {
      const local = this.port(ns, svc, Number(p));
      return local ? `${host}:${local}` : all;
    });
  }

  close(): void {
    for (const p of this.proxies.values()) p.server.close();
  }
}
