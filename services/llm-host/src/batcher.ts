import { performance } from 'node:perf_hooks';

/**
 * Dynamic batching: requests that arrive close together run as one batch, because one run over 32 samples costs far
 * less than 32 runs over one. Each request is a number of samples; the batcher packs queued requests (oldest first)
 * into batches of at most `maxBatch` samples, runs up to `concurrency` batches at once, and routes each request's
 * part of a batch's results back to it.
 */

/** What one finished batch looked like, for metrics. */
export interface BatchStats {
  /** Real samples in the batch. */
  samples: number;
  /** Samples the batch was padded to (a bucket size). */
  paddedSize: number;
  /** Request parts in the batch (a split request counts once per chunk). */
  parts: number;
  /** Seconds the oldest part waited in the queue before the batch started. */
  waitSeconds: number;
  /** Seconds `run` took. */
  seconds: number;
  /** False when `run` failed (its requests were rejected). */
  ok: boolean;
}

export interface BatcherOptions<Req, Res> {
  /** Most samples in one batch. */
  maxBatch: number;
  /** How long the oldest queued request waits for company before its batch is run although not full. */
  maxDelayMs: number;
  /**
   * Ascending batch sizes a batch is padded up to (fixed shapes let a GPU runtime reuse its kernels and memory);
   * the last must equal maxBatch. Default: powers of two, then maxBatch.
   */
  buckets?: readonly number[];
  /** Batches run at once (default 1): one per session that can run them. */
  concurrency?: number;
  /** Samples in a request (a positive integer). */
  size(req: Req): number;
  /** Samples [start, end) of a request, used to split one larger than maxBatch. */
  slice(req: Req, start: number, end: number): Req;
  /** Joins the results of a split request's chunks, given in order, into the result of the whole request. */
  merge(chunks: Res[]): Res;
  /**
   * Runs one batch: the parts in order, to be padded to `paddedSize` samples. Resolves to one result per part, in the
   * same order. A rejection fails exactly the requests with a part in this batch.
   */
  run(parts: Req[], paddedSize: number): Promise<Res[]>;
  /** Called after each batch (success or failure), e.g. to record metrics. Should not throw. */
  onBatch?(stats: BatchStats): void;
}

/** Powers of two below maxBatch, then maxBatch: [1, 2, 4, 8, 16, 32] for 32, [1, 2, 4, 8, 16, 24] for 24. */
export function powerOfTwoBuckets(maxBatch: number): number[] {
  const buckets: number[] = [];
  for (let b = 1; b < maxBatch; b *= 2) buckets.push(b);
  buckets.push(maxBatch);
  return buckets;
}

/** Error for submissions to a closed batcher, so callers (e.g. a server shutting down) can tell it apart. */
export class BatcherClosedError extends Error {
  override name = 'BatcherClosedError';
}

/** One submitted request: collects its chunks' results and settles once. */
interface Ticket<Res> {
  /** Results of the request's chunks so far, by chunk index (one chunk unless it was split). */
  chunks: (Res | undefined)[];
  split: boolean;
  remaining: number;
  failed: boolean;
  resolve(res: Res): void;
  reject(error: Error): void;
}

/** A queued piece of a request: the whole request, or one chunk of one larger than maxBatch. */
interface Part<Req, Res> {
  req: Req;
  samples: number;
  ticket: Ticket<Res>;
  chunk: number;
  enqueuedAt: number;
}

export class DynamicBatcher<Req, Res> {
  private readonly maxBatch: number;
  private readonly maxDelayMs: number;
  private readonly buckets: readonly number[];
  private readonly concurrency: number;
  private readonly queue: Part<Req, Res>[] = [];
  private queuedSamples = 0;
  private running = 0;
  private timer?: NodeJS.Timeout;
  private closed = false;
  private drainWaiters: (() => void)[] = [];

  constructor(private readonly options: BatcherOptions<Req, Res>) {
    const { maxBatch, maxDelayMs, concurrency = 1 } = options;
    if (!Number.isInteger(maxBatch) || maxBatch < 1)
      throw new Error(`maxBatch must be a positive integer, got ${maxBatch}`);
    if (!(maxDelayMs >= 0)) throw new Error(`maxDelayMs must be >= 0, got ${maxDelayMs}`);
    if (!Number.isInteger(concurrency) || concurrency < 1)
      throw new Error(`concurrency must be a positive integer, got ${concurrency}`);
    const buckets = options.buckets ?? powerOfTwoBuckets(maxBatch);
    buckets.forEach((b, i) => {
      if (!Number.isInteger(b) || b < 1 || (i > 0 && b <= buckets[i - 1]!))
        throw new Error(`buckets must be ascending positive integers, got [${buckets.join(', ')}]`);
    });
    if (buckets.at(-1) !== maxBatch)
      throw new Error(`the last bucket must equal maxBatch ${maxBatch}, got [${buckets.join(', ')}]`);
    this.maxBatch = maxBatch;
    this.maxDelayMs = maxDelayMs;
    this.buckets = [...buckets];
    this.concurrency = concurrency;
  }

  /** Samples waiting in the queue (not yet in a running batch). */
  get queueDepth(): number {
    return this.queuedSamples;
  }

  /** Batches running now. */
  get inFlight(): number {
    return this.running;
  }

  /** Queues a request; resolves to its result once every batch holding part of it has run. */
  submit(req: Req): Promise<Res> {
    if (this.closed) return Promise.reject(new BatcherClosedError('the batcher is closed and accepts no new requests'));
    let samples: number;
    try {
      samples = this.options.size(req);
    } catch (e) {
      return Promise.reject(e);
    }
    if (!Number.isInteger(samples) || samples < 1)
      return Promise.reject(new Error(`a request must hold a positive integer number of samples, got ${samples}`));
    return new Promise<Res>((resolve, reject) => {
      const chunkCount = Math.ceil(samples / this.maxBatch);
      const ticket: Ticket<Res> = {
        chunks: [],
        split: chunkCount > 1,
        remaining: chunkCount,
        failed: false,
        resolve,
        reject,
      };
      const enqueuedAt = performance.now();
      // A request larger than maxBatch goes in maxBatch-sized chunks; the full ones are batches of their own.
      const parts: Part<Req, Res>[] = [];
      try {
        for (let chunk = 0; chunk < chunkCount; chunk++) {
          const start = chunk * this.maxBatch;
          const end = Math.min(samples, start + this.maxBatch);
          const part = chunkCount === 1 ? req : this.options.slice(req, start, end);
          parts.push({ req: part, samples: end - start, ticket, chunk, enqueuedAt });
        }
      } catch (e) {
        reject(e as Error);
        return;
      }
      this.queue.push(...parts);
      this.queuedSamples += samples;
      this.pump();
    });
  }

  /** Resolves once everything queued and running has finished. Queued batches run at once instead of waiting. */
  drain(): Promise<void> {
    if (this.idle()) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    this.pump();
    return done;
  }

  /** Refuses new requests from now on, and resolves once the queued and running ones have finished. */
  close(): Promise<void> {
    this.closed = true;
    return this.drain();
  }

  private idle(): boolean {
    return this.queue.length === 0 && this.running === 0;
  }

  /** Starts every batch that is ready while a runner is free, else arms the timer for the oldest request's deadline. */
  private pump(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.running < this.concurrency && this.queue.length > 0) {
      const { count, samples, full } = this.nextBatch();
      const waited = performance.now() - this.queue[0]!.enqueuedAt;
      // Waiting for company is worth it only when the batch could still grow and nobody is draining.
      if (!full && waited < this.maxDelayMs && this.drainWaiters.length === 0) {
        this.timer = setTimeout(() => this.pump(), this.maxDelayMs - waited);
        break;
      }
      const parts = this.queue.splice(0, count);
      this.queuedSamples -= samples;
      this.launch(parts, samples, waited);
    }
    if (this.idle()) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  /**
   * The next batch: queued parts taken oldest first while they fit. Strict order (no smaller request overtaking a
   * larger one) means no request starves. `full` when waiting cannot make it larger.
   */
  private nextBatch(): { count: number; samples: number; full: boolean } {
    let count = 0;
    let samples = 0;
    while (count < this.queue.length && samples + this.queue[count]!.samples <= this.maxBatch)
      samples += this.queue[count++]!.samples;
    return { count, samples, full: samples === this.maxBatch || count < this.queue.length };
  }

  private bucketFor(samples: number): number {
    return this.buckets.find((b) => b >= samples)!;
  }

  private launch(parts: Part<Req, Res>[], samples: number, waitedMs: number): void {
    this.running++;
    const paddedSize = this.bucketFor(samples);
    const started = performance.now();
    const finish = (outcome: { results: Res[] } | { error: unknown }) => {
      this.running--;
      let error = 'error' in outcome ? outcome.error : undefined;
      const results = 'results' in outcome ? outcome.results : [];
      if (!error && (!Array.isArray(results) || results.length !== parts.length))
        error = new Error(`the batch runner returned ${results?.length} results for ${parts.length} request parts`);
      // Metrics first, so they already count this batch when its callers get their results.
      this.report({
        samples,
        paddedSize,
        parts: parts.length,
        waitSeconds: waitedMs / 1000,
        seconds: (performance.now() - started) / 1000,
        ok: !error,
      });
      if (error) {
        const e = error instanceof Error ? error : new Error(String(error));
        for (const p of parts) this.fail(p.ticket, e);
      } else {
        parts.forEach((p, i) => {
          this.deliver(p, results[i]!);
        });
      }
      this.pump();
    };
    // Through a promise even when `run` throws synchronously, so that pump() is never re-entered from inside itself.
    void Promise.resolve()
      .then(() =>
        this.options.run(
          parts.map((p) => p.req),
          paddedSize,
        ),
      )
      .then(
        (results) => finish({ results }),
        (error: unknown) => finish({ error }),
      );
  }

  private report(stats: BatchStats): void {
    try {
      this.options.onBatch?.(stats);
    } catch (e) {
      // A broken metrics hook must not stall the queue or fail requests; make it visible instead.
      process.emitWarning(`DynamicBatcher onBatch hook threw: ${(e as Error).message}`);
    }
  }

  private deliver(part: Part<Req, Res>, result: Res): void {
    const ticket = part.ticket;
    if (ticket.failed) return;
    ticket.chunks[part.chunk] = result;
    if (--ticket.remaining > 0) return;
    try {
      ticket.resolve(ticket.split ? this.options.merge(ticket.chunks as Res[]) : result);
    } catch (e) {
      this.fail(ticket, e as Error);
    }
  }

  /** Rejects a request once, and drops its chunks still queued: their results would be thrown away. */
  private fail(ticket: Ticket<Res>, error: Error): void {
    if (ticket.failed) return;
    ticket.failed = true;
    ticket.reject(error);
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const part = this.queue[i]!;
      if (part.ticket !== ticket) continue;
      this.queue.splice(i, 1);
      this.queuedSamples -= part.samples;
    }
  }
}
