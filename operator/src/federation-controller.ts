import { isDeepStrictEqual } from 'node:util';
import type { KubernetesObject } from '@kubernetes/client-node';
import { getCondition, setCondition } from './conditions.js';
import type { Recorder } from './events.js';
import { reconcileIdentities, syncNatsAccounts } from './identities.js';
import type { Kube } from './kube.js';
import {
  aggregatorDeployment,
  aggregatorName,
  llmHostDeployment,
  llmHostName,
  llmHostService,
  type OperatorSettings,
  ownerRef,
  SPEC_HASH,
} from './resources.js';
import type { Result } from './round-controller.js';
import { NatsAccountPending, type RoundStore } from './round-store.js';
import {
  API_VERSION,
  type Federation,
  type FederationRound,
  type FederationStatus,
  FINALIZER,
  LABELS,
} from './types.js';

export interface FederationControllerDeps {
  kube: Kube;
  store: RoundStore;
  recorder: Recorder;
  settings: OperatorSettings;
}

/** The first llm-host or aggregator pod whose container has restarted, with the reason its last run ended. */
function crashReport(d: FederationControllerDeps, f: Federation): { reason: string; message: string } | undefined {
  for (const [component, reason] of [
    ['llm-host', 'LlmHostFailing'],
    ['aggregator', 'AggregatorFailing'],
  ] as const) {
    for (const p of d.kube.pods(f.metadata.namespace!, {
      [LABELS.name]: `fednano-${component}`,
      [LABELS.federation]: f.metadata.name!,
    })) {
      const c = p.status?.containerStatuses?.[0];
      const last = c?.lastState?.terminated;
      if (c && c.restartCount > 0 && last)
        return {
          reason,
          message: `${component} pod ${p.metadata?.name} restarted ${c.restartCount} times; last exit ${last.exitCode}: ${last.message ?? last.reason ?? 'no message'}`,
        };
    }
  }
  return undefined;
}

export const autopilotRoundName = (f: Federation, round: number) => `${f.metadata.name}-round-${round}`;

/**
 * Federation reconcile: the llm-host Deployment and Service and the aggregator Deployment exist and match the spec;
 * with `rounds: N`, FederationRounds are created one after another; status says whether the federation is ready
 * and how far it got. A finalizer removes the federation's NATS state (which owner references cannot reach).
 */
export async function reconcileFederation(
  d: FederationControllerDeps,
  namespace: string,
  name: string,
): Promise<Result> {
  const f = d.kube.federation(namespace, name);
  if (!f) return {};
  if (f.metadata.deletionTimestamp) {
    if (f.metadata.finalizers?.includes(FINALIZER)) {
      try {
        await d.store.forgetFederation({ namespace, federation: name });
      } catch (e) {
        // An account NATS never loaded holds nothing to forget.
        if (!(e instanceof NatsAccountPending)) throw e;
      }
      const accounts = d.settings.security?.natsAccounts;
      if (accounts) await syncNatsAccounts(d.kube, accounts, { namespace, federation: name });
      await d.kube.replace({
        ...f,
        metadata: { ...f.metadata, finalizers: f.metadata.finalizers.filter((x) => x !== FINALIZER) },
      });
    }
    return {};
  }
  if (!f.metadata.finalizers?.includes(FINALIZER)) {
    await d.kube.replace({
      ...f,
      metadata: { ...f.metadata, finalizers: [...(f.metadata.finalizers ?? []), FINALIZER] },
    });
    return {};
  }

  // Identities first: the Deployments and client pods mount their Secrets.
  const identities = await reconcileIdentities(d.kube, f, d.settings.security ?? {});
  for (const w of identities.written) d.recorder.event(f, 'Normal', 'IdentityIssued', `wrote Secret ${w}`);
  for (const r of identities.removed)
    d.recorder.event(f, 'Normal', 'IdentityRevoked', `deleted Secret ${r} (client left the roster)`);

  // Owned objects: create what is missing, replace what drifted from the desired spec (by hash).
  const desired: [KubernetesObject, KubernetesObject | undefined][] = [
    [llmHostDeployment(f, d.settings), d.kube.deployment(namespace, llmHostName(f))],
    [llmHostService(f), d.kube.service(namespace, llmHostName(f))],
    [aggregatorDeployment(f, d.settings), d.kube.deployment(namespace, aggregatorName(f))],
  ];
  for (const [want, have] of desired) {
    if (!have) {
      await d.kube.create(want);
      d.recorder.event(f, 'Normal', 'Created', `created ${want.kind} ${want.metadata!.name}`);
    } else if (have.metadata?.annotations?.[SPEC_HASH] !== want.metadata!.annotations![SPEC_HASH]) {
      await d.kube.replace({
        ...want,
        metadata: { ...want.metadata, resourceVersion: have.metadata?.resourceVersion },
      });
      d.recorder.event(f, 'Normal', 'Updated', `updated ${want.kind} ${want.metadata!.name} to match the Federation`);
    }
  }

  const status: FederationStatus = structuredClone(f.status ?? {});
  status.observedGeneration = f.metadata.generation;
  status.clients = f.spec.clients.length;
  const llm = d.kube.deployment(namespace, llmHostName(f));
  const agg = d.kube.deployment(namespace, aggregatorName(f));
  let natsPending: string | undefined;
  const initial = await d.store.read({ namespace, federation: name }, 0).catch((e: unknown) => {
    if (!(e instanceof NatsAccountPending)) throw e;
    natsPending = e.message;
    return undefined;
  });
  const waiting = [
    natsPending && `the NATS account (${natsPending})`,
    (llm?.status?.availableReplicas ?? 0) < 1 && 'the llm-host',
    (agg?.status?.availableReplicas ?? 0) < 1 && 'the aggregator',
    !initial && 'the initial adapter',
  ].filter(Boolean);
  const ready = waiting.length === 0;
  // A service that keeps crashing (a wrong model path, a missing GPU) says why in its pods' last termination.
  const crashing = ready ? undefined : crashReport(d, f);
  status.conditions = setCondition(status.conditions, {
    type: 'Ready',
    status: ready ? 'True' : 'False',
    reason: ready
      ? 'ServicesAvailable'
      : (crashing?.reason ?? (natsPending ? 'WaitingForNatsAccount' : 'WaitingForServices')),
    message: ready
      ? 'llm-host and aggregator are available'
      : (crashing?.message ?? `waiting for ${waiting.join(', ')}`),
    observedGeneration: f.metadata.generation,
  });
  if (crashing && getCondition(f.status?.conditions, 'Ready')?.reason !== crashing.reason)
    d.recorder.event(f, 'Warning', crashing.reason, crashing.message);

  const rounds = d.kube
    .rounds(namespace)
    .filter((r) => r.spec.federationRef.name === name)
    .sort((a, b) => a.spec.round - b.spec.round);
  const succeeded = rounds.filter((r) => r.status?.phase === 'Succeeded');
  const last = rounds.at(-1);
  const lastSucceeded = succeeded.at(-1);
  status.currentRound = last?.spec.round ?? 0;
  if (lastSucceeded?.status?.outputAdapter) status.globalAdapter = lastSucceeded.status.outputAdapter.object;
  // The current global adapter's held-out accuracy (the aggregator's score of the last round that succeeded).
  const accuracy = lastSucceeded?.status?.metrics?.accuracy;
  if (accuracy === undefined) delete status.lastAccuracy;
  else status.lastAccuracy = accuracy;
  const target = f.spec.rounds;
  if (!ready) status.phase = 'Pending';
  else if (last?.status?.phase === 'Failed') status.phase = 'Failed';
  else if (target && succeeded.length >= target) status.phase = 'Completed';
  else if (last && last.status?.phase !== 'Succeeded') status.phase = 'Running';
  else status.phase = 'Ready';

  // Autopilot: the next round once the previous one succeeded.
  if (
    ready &&
    target &&
    status.phase !== 'Failed' &&
    (!last || last.status?.phase === 'Succeeded') &&
    rounds.length < target
  ) {
    const next = (last?.spec.round ?? 0) + 1;
    const round: FederationRound = {
      apiVersion: API_VERSION,
      kind: 'FederationRound',
      metadata: {
        name: autopilotRoundName(f, next),
        namespace,
        ownerReferences: [ownerRef(f)],
        labels: { 'fednano.io/federation': name },
      },
      spec: { federationRef: { name }, round: next },
    };
    try {
      await d.kube.create(round);
      d.recorder.event(
        f,
        'Normal',
        'RoundCreated',
        `created FederationRound ${round.metadata.name} (${next} of ${target})`,
      );
    } catch (e) {
      if ((e as { code?: number }).code !== 409) throw e;
    }
    status.phase = 'Running';
    status.currentRound = next;
  }
  if (!isDeepStrictEqual(status, f.status)) await d.kube.replaceStatus({ ...f, status });
  // Certificates are renewed on time even when nothing else happens.
  const renew = identities.renewInMs;
  const requeueAfterMs = Math.min(ready ? Number.POSITIVE_INFINITY : 5_000, renew ?? Number.POSITIVE_INFINITY);
  return Number.isFinite(requeueAfterMs) ? { requeueAfterMs } : {};
}
