import type { ClientProgress, LocalCluster, RunHooks } from '@fednano/local-cluster';
import type { ServiceProcess } from '@fednano/service-kit';

export interface FaultContext {
  cluster: LocalCluster;
  agents: Map<string, ServiceProcess>;
  /** The progress report that triggered the fault. */
  p: ClientProgress;
}

/** `fednano run` hooks that call `fault` once, on the first client progress report that matches. */
export function onFirst(match: (p: ClientProgress) => boolean, fault: (ctx: FaultContext) => void): RunHooks {
  let ctx: Omit<FaultContext, 'p'> | undefined;
  let fired = false;
  return {
    onRoundStarted: (_round, c) => {
      ctx = c;
    },
    onProgress: (p) => {
      if (!fired && ctx && match(p)) {
        fired = true;
        fault({ ...ctx, p });
      }
    },
  };
}
