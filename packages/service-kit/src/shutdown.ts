import type { Logger } from 'pino';

/**
 * Graceful shutdown: the first SIGTERM/SIGINT runs `drain` (stop taking work, finish or hand back what is in
 * flight) and exits 0; a second signal, or a drain slower than `timeoutMs`, exits 1 at once.
 */
export function onShutdown(log: Logger, drain: () => Promise<void>, timeoutMs = 30_000): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting without finishing the drain');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down: draining in-flight work');
    const timer = setTimeout(() => {
      log.error({ timeoutMs }, 'drain timed out');
      process.exit(1);
    }, timeoutMs);
    timer.unref();
    drain().then(
      () => {
        log.info('drained; exiting');
        process.exit(0);
      },
      (e: Error) => {
        log.error({ err: e }, 'drain failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}
