import { isDeepStrictEqual } from 'node:util';
import { rankMergeProblem, type StrategySpec } from '@fednano/core';
import { rng } from '@fednano/onnx-graph';
import type { FederationRef, RoundDocument, RoundSpec } from '@fednano/wire';
import type { V1Pod } from '@kubernetes/client-node';
import { getCondition, setCondition } from './conditions.js';
import type { Recorder } from './events.js';
import type { Kube } from './kube.js';
import {
  aggregatorName,
  type ClientIdentity,
  clientAgentPod,
  clientCredentialsSecret,
  issuedClientIdentity,
  llmHostName,
  type OperatorSettings,
} from './resources.js';
import type { RoundStore } from './round-store.js';
import {
  type ClientState,
  type Federation,
  type FederationRound,
  type FederationRoundStatus,
  FINALIZER,
  LABELS,
  type RoundPhase,
} from './types.js';

/** What a reconcile asks of the queue: look again after this long (a wait, a deadline), or only on the next event. */
export interface Result {
  requeueAfterMs?: number;
}

export interface RoundControllerDeps {
  kube: Kube;
  store: RoundStore;
  recorder: Recorder;
  settings: OperatorSettings;
  now?: () => Date;
}

const TERMINAL: RoundPhase[] = ['Succeeded', 'Failed'];
const SEED = 0;

const fedRef = (f: Federation): FederationRef => ({ namespace: f.metadata.namespace!, federation: f.metadata.name! });

/** Participants: the explicit list, a seeded fraction of the roster, clientsPerRound of it, or everyone. */
export function resolveParticipants(f: Federation, r: FederationRound): string[] {
  const roster = f.spec.clients.map((c) => c.name);
  if (r.spec.participants) return [...r.spec.participants];
  const fraction = r.spec.fraction ?? f.spec.participation.fraction;
  const count = fraction
    ? Math.max(1, Math.round(fraction * roster.length))
    : (f.spec.participation.clientsPerRound ?? roster.length);
  if (count >= roster.length) return roster;
  // A seeded shuffle keyed by the round: reproducible, and different clients each round.
  const random = rng(SEED * 104729 + r.spec.round);
  const order = [...roster];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order.slice(0, count);
}

const available = (d: { status?: { availableReplicas?: number } } | undefined) =>
  (d?.status?.availableReplicas ?? 0) > 0;

/**
 * FederationRound reconcile: level-triggered and idempotent. It reads the round, its Federation, its Pods and the
 * round's record in NATS, makes the world match (open the record, one client-agent Pod per participant, retries of
 * failed Pods, cleanup when decided), and writes what it saw to status. The aggregator decides the round (quorum and
 * deadline); the operator reflects that decision.
 */
/** Operator-issued identity, else a user-provided NATS credentials Secret when one exists, else none. */
async function clientIdentity(
  d: RoundControllerDeps,
  f: Federation,
  client: string,
): Promise<ClientIdentity | undefined> {
  const issued = issuedClientIdentity(f, client, d.settings);
  if (issued) return issued;
  const secret = clientCredentialsSecret(f, client);
  return (await d.kube.secretExists(f.metadata.namespace!, secret)) ? { secret, nats: true, tls: false } : undefined;
}

export async function reconcileRound(d: RoundControllerDeps, namespace: string, name: string): Promise<Result> {
  const now = d.now?.() ?? new Date();
  const r = d.kube.round(namespace, name);
  if (!r) return {};
  const f = d.kube.federation(namespace, r.spec.federationRef.name);

  if (r.metadata.deletionTimestamp) {
    if (r.metadata.finalizers?.includes(FINALIZER)) {
      if (f) await d.store.forgetRound(fedRef(f), r.spec.round);
      await d.kube.replace({
        ...r,
        metadata: { ...r.metadata, finalizers: r.metadata.finalizers.filter((x) => x !== FINALIZER) },
      });
    }
    return {};
  }

  const status: FederationRoundStatus = structuredClone(r.status ?? {});
  const gen = r.metadata.generation;
  const write = async (s: FederationRoundStatus): Promise<void> => {
    s.observedGeneration = gen;
    if (!isDeepStrictEqual(s, r.status)) await d.kube.replaceStatus({ ...r, status: s });
  };
  const stop = async (phase: RoundPhase, reason: string, message: string, requeueAfterMs?: number): Promise<Result> => {
    const failed = phase === 'Failed';
    if (status.phase !== phase || getCondition(status.conditions, 'Ready')?.reason !== reason)
      d.recorder.event(r, failed ? 'Warning' : 'Normal', reason, message);
    status.phase = phase;
    status.conditions = setCondition(status.conditions, {
      type: 'Ready',
      status: 'False',
      reason,
      message,
      observedGeneration: gen,
    });
    if (failed) {
      status.conditions = setCondition(status.conditions, {
        type: 'Succeeded',
        status: 'False',
        reason,
        message,
        observedGeneration: gen,
      });
      status.completionTime ??= now.toISOString();
    }
    await write(status);
    return { requeueAfterMs };
  };

  // Semantic problems the schema cannot catch become conditions, never crash loops: waits are requeued slowly,
  // permanent problems end the round.
  // A decided round stays decided, whatever happens to its Federation later.
  if (status.phase && TERMINAL.includes(status.phase)) {
    await deleteRunningPods(d, r);
    return {};
  }
  if (!f)
    return stop(
      'Pending',
      'FederationNotFound',
      `Federation "${r.spec.federationRef.name}" does not exist in ${namespace}`,
      30_000,
    );
  const twin = d.kube
    .rounds(namespace)
    .filter(
      (o) =>
        o.spec.federationRef.name === f.metadata.name &&
        o.spec.round === r.spec.round &&
        o.metadata.name !== r.metadata.name,
    )
    .find(
      (o) =>
        `${o.metadata.creationTimestamp}/${o.metadata.name}` < `${r.metadata.creationTimestamp}/${r.metadata.name}`,
    );
  if (twin)
    return stop(
      'Failed',
      'DuplicateRound',
      `round ${r.spec.round} of ${f.metadata.name} already exists as ${twin.metadata.name}`,
    );
  const roster = new Map(f.spec.clients.map((c) => [c.name, c]));
  const participants = resolveParticipants(f, r);
  const unknown = participants.filter((p) => !roster.has(p));
  if (unknown.length)
    return stop(
      'Failed',
      'UnknownClient',
      `participants not in the roster of ${f.metadata.name}: ${unknown.join(', ')}`,
    );
  // Mixed ranks that the strategy cannot merge would fail in the aggregator when the round opens; say so here.
  const mixedRanks = participantRanks(f, participants).ranks;
  const mergeProblem =
    mixedRanks && rankMergeProblem(f.spec.strategy as StrategySpec, f.spec.adapter.rankMerge ?? 'svd');
  if (mergeProblem)
    return stop(
      'Failed',
      'InvalidRankMerge',
      `participants ${Object.keys(mixedRanks).join(', ')} train a rank other than adapter.rank ${f.spec.adapter.rank}, and ${mergeProblem}`,
    );

  if (!r.metadata.finalizers?.includes(FINALIZER)) {
    await d.kube.replace({
      ...r,
      metadata: { ...r.metadata, finalizers: [...(r.metadata.finalizers ?? []), FINALIZER] },
    });
    return {}; // the update comes back as an event
  }

  const ref = fedRef(f);
  let doc = await d.store.read(ref, r.spec.round);
  if (!doc) {
    if (
      !available(d.kube.deployment(namespace, llmHostName(f))) ||
      !available(d.kube.deployment(namespace, aggregatorName(f)))
    )
      return stop(
        'Pending',
        'WaitingForFederation',
        `waiting for the llm-host and aggregator of ${f.metadata.name} to be available`,
        5_000,
      );
    const initial = await d.store.read(ref, 0);
    if (!initial)
      return stop('Pending', 'WaitingForFederation', 'waiting for the aggregator to write the initial adapter', 5_000);
    const previous = r.spec.round === 1 ? initial : await d.store.read(ref, r.spec.round - 1);
    if (previous?.status.state !== 'Aggregated')
      return stop(
        'Pending',
        'WaitingForPreviousRound',
        `round ${r.spec.round - 1} of ${f.metadata.name} has not succeeded${previous ? ` (it is ${previous.status.state})` : ' (it does not exist)'}`,
        10_000,
      );
    const startTime = new Date(status.startTime ?? now);
    const spec: RoundSpec = {
      ...ref,
      round: r.spec.round,
      participants,
      minClients: Math.min(
        participants.length,
        r.spec.minClients ?? f.spec.participation.minClients ?? participants.length,
      ),
      deadline: new Date(startTime.getTime() + 1000 * (r.spec.deadlineSeconds ?? 3600)).toISOString(),
      baseAdapter: previous.status.result!,
      adapter: f.spec.adapter,
      dModel: initial.spec.dModel,
      strategy: f.spec.strategy as RoundSpec['strategy'],
      training: {
        ...f.spec.training,
        ...r.spec.training,
        steps: r.spec.training?.localSteps ?? f.spec.training.localSteps,
        fisherSamples: f.spec.training.fisherSamples ?? 64,
      },
      seeds: Object.fromEntries(participants.map((p, i) => [p, SEED * 31 + r.spec.round * 1000 + i])),
      updateEncoding: f.spec.updateEncoding ?? 'float32',
      ...participantRanks(f, participants),
    };
    await d.store.open(spec);
    doc = (await d.store.read(ref, r.spec.round))!;
    status.startTime = startTime.toISOString();
    d.recorder.event(
      r,
      'Normal',
      'RoundOpened',
      `round ${r.spec.round} opened for ${participants.length} clients, quorum ${spec.minClients}`,
    );
  }
  return reflect(d, f, r, doc, status, write, now);
}

/** The roster's adapterRank of each participant that does not train the federation's rank (none: no `ranks`). */
function participantRanks(f: Federation, participants: string[]): Pick<RoundSpec, 'ranks'> {
  const rankOf = new Map(f.spec.clients.map((c) => [c.name, c.adapterRank ?? f.spec.adapter.rank]));
  const lower = participants.filter((p) => (rankOf.get(p) ?? f.spec.adapter.rank) !== f.spec.adapter.rank);
  return lower.length ? { ranks: Object.fromEntries(lower.map((p) => [p, rankOf.get(p)!])) } : {};
}

/** Pods and status from the round's record: create missing Pods, retry failed ones, report per-client states. */
async function reflect(
  d: RoundControllerDeps,
  f: Federation,
  r: FederationRound,
  doc: RoundDocument,
  status: FederationRoundStatus,
  write: (s: FederationRoundStatus) => Promise<void>,
  now: Date,
): Promise<Result> {
  const gen = r.metadata.generation;
  const counted = new Set(doc.status.accepted.map((a) => a.client));
  const rejected = new Map(doc.status.rejected.map((x) => [x.client, x]));
  const decided = doc.status.state === 'Aggregated' || doc.status.state === 'Failed';
  const pods = d.kube.pods(r.metadata.namespace!, { [LABELS.round]: r.metadata.name! });
  const maxRetries = r.spec.maxRetries ?? 2;
  const clients: NonNullable<FederationRoundStatus['clients']> = [];
  let created = 0;
  for (const name of doc.spec.participants) {
    const mine = pods
      .filter((p) => p.metadata?.labels?.[LABELS.client] === name)
      .sort((a, b) => attemptOf(a) - attemptOf(b));
    const latest = mine.at(-1);
    const restarts = Math.max(0, mine.length - 1);
    let state: ClientState;
    let message: string | undefined;
    if (counted.has(name)) state = 'Counted';
    else if (rejected.has(name)) {
      state = 'Rejected';
      message = `${rejected.get(name)!.reason}: ${rejected.get(name)!.message}`;
    } else if (!latest) state = 'Pending';
    else if (latest.status?.phase === 'Failed') {
      state = 'Failed';
      message = podMessage(latest);
    } else if (latest.status?.phase === 'Succeeded') state = 'Uploaded';
    else if (latest.status?.phase === 'Running') state = 'Training';
    else state = 'Pending';
    if (!decided && (!latest || (state === 'Failed' && restarts < maxRetries))) {
      const client = f.spec.clients.find((c) => c.name === name)!;
      const attempt = latest ? attemptOf(latest) + 1 : 0;
      await d.kube.create(clientAgentPod(f, r, client, attempt, d.settings, await clientIdentity(d, f, name)));
      created++;
      if (latest)
        d.recorder.event(
          r,
          'Warning',
          'ClientRetried',
          `client ${name} failed (${message}); starting attempt ${attempt}`,
        );
      state = 'Pending';
    }
    clients.push({ name, state, restarts, ...(message ? { message } : {}) });
  }
  if (created && !pods.length) d.recorder.event(r, 'Normal', 'PodsCreated', `created ${created} client-agent pods`);
  status.clients = clients;
  status.expected = doc.spec.participants.length;
  status.received = doc.status.accepted.length;
  status.rejected = doc.status.rejected.length;
  const mean = doc.status.metrics;
  if (mean) status.metrics = { loss: mean.meanTrainLoss, uploadBytes: Math.round(mean.meanUpdateBytes) };
  if (doc.status.state === 'Aggregated') {
    reflectEvaluation(f, doc, status, gen);
    const evaluated = getCondition(status.conditions, 'Evaluated');
    if (evaluated?.reason === 'EvaluationFailed')
      d.recorder.event(r, 'Warning', 'EvaluationFailed', evaluated.message!);
    status.phase = 'Succeeded';
    status.outputAdapter = doc.status.result;
    status.completionTime ??= now.toISOString();
    const message =
      doc.status.message ?? `${doc.status.accepted.length} of ${doc.spec.participants.length} updates aggregated`;
    status.conditions = setCondition(status.conditions, {
      type: 'Succeeded',
      status: 'True',
      reason: 'Aggregated',
      message,
      observedGeneration: gen,
    });
    status.conditions = setCondition(status.conditions, {
      type: 'Ready',
      status: 'True',
      reason: 'Aggregated',
      message,
      observedGeneration: gen,
    });
    d.recorder.event(r, 'Normal', 'RoundSucceeded', message);
    await deleteRunningPods(d, r);
  } else if (doc.status.state === 'Failed') {
    status.phase = 'Failed';
    status.completionTime ??= now.toISOString();
    const message = doc.status.message ?? 'the aggregator failed the round';
    status.conditions = setCondition(status.conditions, {
      type: 'Succeeded',
      status: 'False',
      reason: 'QuorumNotMet',
      message,
      observedGeneration: gen,
    });
    status.conditions = setCondition(status.conditions, {
      type: 'Ready',
      status: 'False',
      reason: 'QuorumNotMet',
      message,
      observedGeneration: gen,
    });
    d.recorder.event(r, 'Warning', 'RoundFailed', message);
    await deleteRunningPods(d, r);
  } else {
    status.phase = clients.every((c) => ['Counted', 'Rejected', 'Failed', 'Uploaded'].includes(c.state))
      ? 'Aggregating'
      : 'Running';
    const message = `${status.received} of ${status.expected} updates counted`;
    status.conditions = setCondition(status.conditions, {
      type: 'Succeeded',
      status: 'Unknown',
      reason: 'InProgress',
      message,
      observedGeneration: gen,
    });
    status.conditions = setCondition(status.conditions, {
      type: 'Ready',
      status: 'False',
      reason: 'InProgress',
      message,
      observedGeneration: gen,
    });
  }
  await write(status);
  if (decided) return {};
  // The aggregator decides at the deadline; look again just after it even if no event arrives.
  return { requeueAfterMs: Math.max(1000, Date.parse(doc.spec.deadline) - now.getTime() + 2000) };
}

/**
 * The aggregator's score of the round's adapter: accuracy beside the loss, and an `Evaluated` condition that says
 * why it is absent (no held-out set configured, or one the aggregator could not read).
 */
function reflectEvaluation(f: Federation, doc: RoundDocument, status: FederationRoundStatus, gen?: number): void {
  const e = doc.status.evaluation;
  let condition: { status: 'True' | 'False'; reason: string; message: string };
  if (e) {
    status.metrics = {
      ...status.metrics,
      accuracy: e.accuracy,
      accuracyByType: e.perType,
      evaluatedExamples: e.examples,
    };
    const pct = `${(100 * e.accuracy).toFixed(1)}%`;
    condition = { status: 'True', reason: 'Evaluated', message: `accuracy ${pct} on ${e.examples} held-out questions` };
  } else if (doc.status.evaluationError)
    condition = { status: 'False', reason: 'EvaluationFailed', message: doc.status.evaluationError };
  else if (!f.spec.evaluation)
    condition = {
      status: 'False',
      reason: 'NoEvaluationSet',
      message: `Federation ${f.metadata.name} has no spec.evaluation: set spec.evaluation.dataVolume to a held-out shard to score rounds`,
    };
  else
    condition = {
      status: 'False',
      reason: 'NotEvaluated',
      message: 'the aggregator recorded no evaluation (it was started without --evaluation-data)',
    };
  status.conditions = setCondition(status.conditions, { type: 'Evaluated', ...condition, observedGeneration: gen });
}

const attemptOf = (p: V1Pod) => Number(p.metadata?.annotations?.['fednano.io/attempt'] ?? 0);

function podMessage(p: V1Pod): string {
  const t = p.status?.containerStatuses?.[0]?.state?.terminated;
  return t
    ? `exit code ${t.exitCode}${t.message ? `: ${t.message}` : ''}`
    : (p.status?.message ?? p.status?.reason ?? 'pod failed');
}

async function deleteRunningPods(d: RoundControllerDeps, r: FederationRound) {
  for (const p of d.kube.pods(r.metadata.namespace!, { [LABELS.round]: r.metadata.name! }))
    if (p.status?.phase === 'Pending' || p.status?.phase === 'Running' || !p.status?.phase)
      if (!p.metadata?.deletionTimestamp) await d.kube.delete(p);
}
