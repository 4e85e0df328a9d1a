import type { KubeCore } from './core.js';
import { ApiError } from './errors.js';
import type { Change } from './store.js';

/**
 * A control loop of the emulated API server: it watches the store and, when a change it cares about happens, runs
 * its level-triggered `sync` once on the next tick (however many changes arrived meanwhile). A failure is logged and
 * the loop stays subscribed; API errors (conflicts, objects gone) are expected races and are not.
 */
export abstract class StoreReactor {
  private readonly unsubscribe: () => void;
  private pending = false;

  constructor(
    protected readonly core: KubeCore,
    private readonly name: string,
  ) {
    this.unsubscribe = core.store.subscribe((c) => {
      if (this.wants(c)) this.kick();
    });
  }

  stop() {
    this.unsubscribe();
  }

  protected abstract wants(c: Change): boolean;
  abstract sync(): void;

  private kick() {
    if (this.pending) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      try {
        this.sync();
      } catch (e) {
        if (!(e instanceof ApiError))
          process.stderr.write(`kube-api: ${this.name} failed: ${(e as Error).stack ?? e}\n`);
      }
    });
  }
}
