import type { Logger } from '@fednano/service-kit';
import { statusCode } from './kube.js';
import type { OperatorMetrics } from './metrics.js';
import type { Result } from './round-controller.js';
import { WorkQueue } from './workqueue.js';

/**
 * One controller: a work queue of `namespace/name` keys and workers that reconcile them. A failed reconcile is
 * retried with backoff (409 conflicts included: the next try reads the fresh object from the cache); a result may
 * ask to look again later. The same key is never reconciled by two workers at once.
 */
export class Controller {
  readonly queue = new WorkQueue({ baseDelayMs: 200, maxDelayMs: 60_000 });
  private readonly running: Promise<void>[] = [];

  constructor(
    readonly name: string,
    private readonly reconcile: (namespace: string, name: string) => Promise<Result>,
    private readonly metrics: OperatorMetrics,
    private readonly log: Logger,
  ) {}

  enqueue(namespace: string | undefined, name: string | undefined): void {
    if (namespace && name) this.queue.add(`${namespace}/${name}`);
  }

  start(workers = 2): void {
    for (let i = 0; i < workers; i++) this.running.push(this.work());
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const [namespace, name] = key.split('/') as [string, string];
      const end = this.metrics.reconcileDuration.startTimer({ controller: this.name });
      try {
        const result = await this.reconcile(namespace, name);
        end({ result: 'success' });
        this.queue.forget(key);
        if (result.requeueAfterMs) this.queue.addAfter(key, result.requeueAfterMs);
      } catch (e) {
        end({ result: 'error' });
        const code = statusCode(e);
        this.metrics.errors.inc({ controller: this.name, code: String(code ?? 'none') });
        this.metrics.retries.inc({ controller: this.name });
        const delayMs = this.queue.addRateLimited(key);
        const level = code === 409 ? 'debug' : 'warn';
        this.log[level](
          { controller: this.name, key, code, delayMs, err: (e as Error).message },
          'reconcile failed; retrying',
        );
      } finally {
        this.queue.done(key);
      }
    }
  }

  async stop(): Promise<void> {
    this.queue.shutDown();
    await Promise.all(this.running);
  }
}
