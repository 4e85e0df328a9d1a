import { accessSync, constants, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where scripts/install-tools.sh puts the Go-built tools (etcd, kube-apiserver, kube-controller-manager,
 * kube-scheduler, helm): $FEDNANO_TOOLS_DIR, else ${XDG_CACHE_HOME:-~/.cache}/fednano/tools, with links to the pinned
 * versions in bin/.
 */
export const TOOLS_DIR =
  process.env.FEDNANO_TOOLS_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'fednano/tools');

export type Tool =
  | 'etcd'
  | 'kube-apiserver'
  | 'kube-controller-manager'
  | 'kube-scheduler'
  | 'kubectl'
  | 'kubelet'
  | 'helm';

export const toolPath = (tool: Tool): string => join(TOOLS_DIR, 'bin', tool);

/** Why the tools cannot be used (naming the missing ones and the command that builds them), or undefined. */
export function toolsProblem(tools: readonly Tool[]): string | undefined {
  const missing = tools.filter((t) => {
    try {
      accessSync(toolPath(t), constants.X_OK);
      return false;
    } catch {
      return true;
    }
  });
  return missing.length === 0
    ? undefined
    : `${missing.join(', ')} not built in ${TOOLS_DIR}/bin (run: bash scripts/install-tools.sh)`;
}

/** The pinned versions the tools were built at (from the cache's versions.env). */
export function toolVersions(): Record<string, string> {
  try {
    return Object.fromEntries(
      readFileSync(join(TOOLS_DIR, 'versions.env'), 'utf8')
        .split('\n')
        .filter((l) => l.includes('='))
        .map((l) => l.split('=', 2) as [string, string]),
    );
  } catch {
    return {};
  }
}
