/**
 * Errors that mean "NATS is not answering right now" rather than "this request is wrong": the request timed out (the
 * connection is down and reconnecting, or the server is restarting), nobody answered on the JetStream API subject
 * (the server is back but JetStream is still recovering its streams), or JetStream said it is temporarily
 * unavailable. Anything else (a permission error, a wrong-revision conflict, a closed connection) is not retried.
 */
export function isNatsUnavailable(e: unknown): boolean {
  const err = e as { name?: string; message?: string; status?: number; code?: number; cause?: unknown } | undefined;
  if (!err) return false;
  if (err.name === 'TimeoutError' || err.name === 'NoResponders') return true;
  if (err.name === 'RequestError' && /no responders/i.test(err.message ?? '')) return true;
  if (/jetstream is not enabled|temporarily unavailable/i.test(err.message ?? '')) return true;
  // JetStreamApiError: status is the API's HTTP-like code, code its error code (10008: temporarily unavailable).
  if (err.name === 'JetStreamApiError' && (err.status === 503 || err.code === 10008)) return true;
  return err.cause !== undefined && err.cause !== e && isNatsUnavailable(err.cause);
}

export interface StoreRetryOptions {
  /** Give up (rethrow) once this much time has passed since the first attempt, ms. */
  budgetMs: number;
  initialDelayMs?: number;
  maxDelayMs?: number;
  onRetry?: (info: { attempt: number; delayMs: number; error: string }) => void;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/**
 * Runs `op` until it succeeds, retrying while NATS is unavailable (a server restart, a broken link) with doubling
 * delays, for at most `budgetMs`. `op` must be safe to repeat: its first attempt may have taken effect even though its
 * reply was lost.
 */
export async function retryWhileUnavailable<T>(op: () => Promise<T>, o: StoreRetryOptions): Promise<T> {
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const started = now();
  let delayMs = o.initialDelayMs ?? 100;
  for (let attempt = 1; ; attempt++) {
    try {
      return await op();
    } catch (e) {
      if (!isNatsUnavailable(e) || now() + delayMs - started > o.budgetMs) throw e;
      o.onRetry?.({ attempt, delayMs, error: (e as Error).message });
      await sleep(delayMs);
      delayMs = Math.min(o.maxDelayMs ?? 2000, delayMs * 2);
    }
  }
}
