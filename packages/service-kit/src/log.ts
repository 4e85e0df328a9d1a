import { type Logger, pino } from 'pino';

export type { Logger };

/**
 * JSON logs on stderr (stdout stays free for a command's own output). Level from FEDNANO_LOG_LEVEL (default info).
 * `base` carries the fields that apply to every line of this process: component, federation, round, client.
 */
export function createLogger(component: string, base: Record<string, unknown> = {}): Logger {
  return pino(
    { level: process.env.FEDNANO_LOG_LEVEL ?? 'info', base: { component, ...base } },
    pino.destination({ fd: 2, sync: true }),
  );
}
