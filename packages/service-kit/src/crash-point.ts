/**
 * Fault injection at an exact moment: with FEDNANO_CRASH_AT=<name>, the process kills itself (SIGKILL, no cleanup)
 * when it reaches `crashPoint(<name>)`. Tests use it to crash a service between two writes that no external signal
 * can hit reliably; unset, it costs one comparison.
 */
export function crashPoint(name: string, env: NodeJS.ProcessEnv = process.env): void {
  if (env.FEDNANO_CRASH_AT === name) process.kill(process.pid, 'SIGKILL');
}
