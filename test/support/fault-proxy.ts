import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

/**
 * A userland TCP proxy that misbehaves on request, for the fault-injection suite. It sits between a client and a
 * service (gRPC, NATS) and can
 * - delay every byte by a fixed one-way latency and cap the bandwidth of each direction (`shape`);
 * - reset every open connection and refuse new ones for a while (`drop`), as when a link or a middlebox dies;
 * - blackhole the link for a while (`blackhole`): nothing passes and nothing is refused, bytes (and new connections)
 *   wait and go through in order once the hole closes, as TCP retransmission would deliver them after a partition;
 * - look at the bytes (`tap`) and cut one connection at a precise protocol moment, e.g. just before a NATS publish or
 *   its acknowledgement would pass.
 * It runs everywhere (no privileges, no kernel modules), unlike netem.
 */
export type Direction = 'up' | 'down'; // up: client -> target; down: target -> client

export interface LinkShape {
  /** Added one-way delay, ms (each direction). */
  latencyMs?: number;
  /** Cap per connection and direction, bytes per second. */
  bytesPerSecond?: number;
}

export interface FaultProxyStats {
  connections: number;
  open: number;
  bytesUp: number;
  bytesDown: number;
  /** Connections reset by `drop`, `refuse` or a tap. */
  resets: number;
}

/**
 * Sees each chunk before it is forwarded. 'cut' discards the chunk and resets that connection (both sides): the peer
 * that sent it believes it was written, the other never sees it.
 */
export type Tap = (dir: Direction, chunk: Buffer, link: Link) => 'pass' | 'cut';

/** Largest piece scheduled at once, so that a bandwidth cap spreads a big write over time. */
const PIECE = 16 * 1024;
/** Bytes queued in one direction before the sending socket is paused. */
const HIGH_WATER = 1 << 20;

/** One direction of a link: an ordered queue of pieces, each with the time it may leave. */
class Lane {
  private readonly queue: { at: number; piece: Buffer }[] = [];
  private queued = 0;
  private busyUntil = 0;
  private lastAt = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly from: () => Socket | undefined,
    private readonly to: () => Socket | undefined,
    private readonly shape: () => LinkShape,
  ) {}

  push(chunk: Buffer): void {
    const { latencyMs = 0, bytesPerSecond } = this.shape();
    const now = performance.now();
    for (let i = 0; i < chunk.length; i += PIECE) {
      const piece = chunk.subarray(i, i + PIECE);
      const start = Math.max(now, this.busyUntil);
      this.busyUntil = start + (bytesPerSecond ? (piece.length * 1000) / bytesPerSecond : 0);
      // Never earlier than a piece queued before it: one TCP stream stays in order.
      this.lastAt = Math.max(this.lastAt, this.busyUntil + latencyMs);
      this.queue.push({ at: this.lastAt, piece });
      this.queued += piece.length;
    }
    if (this.queued > HIGH_WATER) this.from()?.pause();
    this.pump();
  }

  private pump(): void {
    clearTimeout(this.timer);
    const out = this.to();
    if (!out) return; // upstream not connected yet: `flush` pumps once it is
    const now = performance.now();
    while (this.queue.length && this.queue[0]!.at <= now) {
      const { piece } = this.queue.shift()!;
      this.queued -= piece.length;
      if (!out.destroyed) out.write(piece);
    }
    const from = this.from();
    if (this.queued <= HIGH_WATER && from?.isPaused()) from.resume();
    if (this.queue.length) this.timer = setTimeout(() => this.pump(), Math.max(1, this.queue[0]!.at - now));
  }

  flush(): void {
    this.pump();
  }

  clear(): void {
    clearTimeout(this.timer);
    this.queue.length = 0;
    this.queued = 0;
  }
}

export class Link {
  upstream?: Socket;
  private readonly up: Lane;
  private readonly down: Lane;
  /** Chunks that arrived while the proxy was blackholed, forwarded in order when it heals. */
  private held: [Direction, Buffer][] = [];
  closed = false;

  constructor(
    readonly id: number,
    readonly client: Socket,
    private readonly proxy: FaultProxy,
  ) {
    this.up = new Lane(
      () => client,
      () => this.upstream,
      () => proxy.linkShape,
    );
    this.down = new Lane(
      () => this.upstream,
      () => client,
      () => proxy.linkShape,
    );
    client.on('data', (b: Buffer) => this.onData('up', b));
    client.on('error', () => this.close());
    client.on('close', () => this.close());
  }

  /** Connects to the target (deferred while the proxy is blackholed). */
  attach(host: string, port: number): void {
    const up = tcpConnect(port, host);
    this.upstream = up;
    up.setNoDelay(true);
    up.on('connect', () => this.up.flush());
    up.on('data', (b: Buffer) => this.onData('down', b));
    up.on('error', () => this.close());
    up.on('close', () => this.close());
  }

  private onData(dir: Direction, chunk: Buffer): void {
    if (this.closed) return;
    if (dir === 'up') this.proxy.counters.bytesUp += chunk.length;
    else this.proxy.counters.bytesDown += chunk.length;
    if (this.proxy.tap?.(dir, chunk, this) === 'cut') {
      this.reset();
      return;
    }
    if (this.proxy.isBlackholed) {
      this.held.push([dir, chunk]);
      return;
    }
    (dir === 'up' ? this.up : this.down).push(chunk);
  }

  /** After a blackhole: what waited goes through, in order. */
  heal(): void {
    const held = this.held;
    this.held = [];
    for (const [dir, chunk] of held) (dir === 'up' ? this.up : this.down).push(chunk);
  }

  /** Resets both sides (RST where the socket supports it), as a dying link or middlebox would. */
  reset(): void {
    if (this.closed) return;
    this.proxy.counters.resets++;
    for (const s of [this.client, this.upstream]) {
      if (!s || s.destroyed) continue;
      if (typeof s.resetAndDestroy === 'function' && s.readyState === 'open') s.resetAndDestroy();
      else s.destroy();
    }
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.up.clear();
    this.down.clear();
    this.held = [];
    this.client.destroy();
    this.upstream?.destroy();
    this.proxy.forget(this);
  }
}

export class FaultProxy {
  linkShape: LinkShape = {};
  tap?: Tap;
  readonly counters: FaultProxyStats = { connections: 0, open: 0, bytesUp: 0, bytesDown: 0, resets: 0 };
  private readonly links = new Set<Link>();
  private refuseUntil = 0;
  private holeUntil = 0;
  private holeTimer?: NodeJS.Timeout;
  private nextId = 1;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    public target: { host: string; port: number } | undefined,
  ) {}

  /** Listens on an ephemeral port of 127.0.0.1; `target` may be set later (connections before that are reset). */
  static async start(o: { target?: { host: string; port: number }; shape?: LinkShape } = {}): Promise<FaultProxy> {
    let proxy: FaultProxy | undefined;
    const server = createServer((socket) => proxy!.accept(socket));
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
    });
    proxy = new FaultProxy(server, port, o.target);
    if (o.shape) proxy.linkShape = o.shape;
    return proxy;
  }

  /** host:port of the proxy, for a gRPC address. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get stats(): FaultProxyStats {
    return { ...this.counters, open: this.links.size };
  }

  get isBlackholed(): boolean {
    return performance.now() < this.holeUntil;
  }

  private accept(socket: Socket): void {
    socket.setNoDelay(true);
    this.counters.connections++;
    const link = new Link(this.nextId++, socket, this);
    this.links.add(link);
    if (!this.target || performance.now() < this.refuseUntil) {
      link.reset();
      return;
    }
    if (!this.isBlackholed) link.attach(this.target.host, this.target.port);
  }

  forget(link: Link): void {
    this.links.delete(link);
  }

  shape(s: LinkShape): void {
    this.linkShape = s;
  }

  /** Resets every open connection; returns how many. */
  resetAll(): number {
    const n = this.links.size;
    for (const l of [...this.links]) l.reset();
    return n;
  }

  /** New connections are reset for `ms`. */
  refuse(ms: number): void {
    this.refuseUntil = performance.now() + ms;
  }

  /** The link dies: every open connection is reset and new ones are refused for `ms`. Returns the connections reset. */
  drop(ms: number): number {
    this.refuse(ms);
    return this.resetAll();
  }

  /** Nothing passes for `ms`; nothing is refused either. Resolves when the hole has closed and the backlog moves. */
  blackhole(ms: number): Promise<void> {
    this.holeUntil = performance.now() + ms;
    clearTimeout(this.holeTimer);
    return new Promise((resolve) => {
      this.holeTimer = setTimeout(() => {
        this.holeUntil = 0; // timers may fire a hair early: the hole is closed from here on, whatever the clock says
        for (const l of this.links) {
          if (!l.upstream && this.target) l.attach(this.target.host, this.target.port);
          l.heal();
        }
        resolve();
      }, ms);
    });
  }

  async close(): Promise<void> {
    clearTimeout(this.holeTimer);
    for (const l of [...this.links]) l.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
