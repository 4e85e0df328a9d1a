import type { LocalTrainingConfig } from '@fednano/core';
import type { V1ObjectMeta } from '@kubernetes/client-node';

/**
 * The custom resources as TypeScript sees them. The schemas in crds/ are the source of truth; types.test.ts checks
 * that every field named here exists in those schemas (and examples typed with these validate against them).
 */
export const GROUP = 'fednano.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime?: string;
  reason?: string;
  message?: string;
}

export interface RosterClient {
  name: string;
  nodeSelector?: Record<string, string>;
  /** Any Kubernetes volume source (hostPath, persistentVolumeClaim, ...) holding the client's data shard. */
  dataVolume?: Record<string, unknown>;
  image?: string;
  /** This client's adapter rank (at most spec.adapter.rank, the default). */
  adapterRank?: number;
}

export interface FederationSpec {
  model: { path: string; sha256?: string };
  llmHost?: {
    image?: string;
    replicas?: number;
    gpus?: number;
    nodeSelector?: Record<string, string>;
    tolerations?: Record<string, unknown>[];
    resources?: Record<string, unknown>;
  };
  aggregator?: { image?: string; resources?: Record<string, unknown> };
  clients: RosterClient[];
  /** The held-out set the aggregator scores each new global adapter on (a shard on any volume source). */
  evaluation?: { dataVolume: Record<string, unknown> };
  adapter: { rank: number; alpha: number; rankMerge?: 'svd' | 'zero-pad' };
  strategy: { name: string } & Record<string, unknown>;
  /** Local training as core's LocalTrainingConfig, with steps named per round and the seed set per client. */
  training: Omit<LocalTrainingConfig, 'steps' | 'seed' | 'proximalMu'> & { localSteps: number; fisherSamples?: number };
  participation: { clientsPerRound?: number; fraction?: number; minClients?: number };
  rounds?: number;
  updateEncoding?: 'float32' | 'float16' | 'bfloat16' | 'int8';
}

export type FederationPhase = 'Pending' | 'Ready' | 'Running' | 'Completed' | 'Failed';

export interface FederationStatus {
  observedGeneration?: number;
  phase?: FederationPhase;
  currentRound?: number;
  clients?: number;
  lastAccuracy?: number;
  globalAdapter?: string;
  conditions?: Condition[];
}

export interface Federation {
  apiVersion: typeof API_VERSION;
  kind: 'Federation';
  metadata: V1ObjectMeta;
  spec: FederationSpec;
  status?: FederationStatus;
}

export interface FederationRoundSpec {
  federationRef: { name: string };
  round: number;
  participants?: string[];
  fraction?: number;
  minClients?: number;
  deadlineSeconds?: number;
  maxRetries?: number;
  training?: { localSteps?: number; batchSize?: number; learningRate?: number };
}

export type RoundPhase = 'Pending' | 'Running' | 'Aggregating' | 'Succeeded' | 'Failed';
export type ClientState = 'Pending' | 'Training' | 'Uploaded' | 'Counted' | 'Rejected' | 'Failed';

export interface FederationRoundStatus {
  observedGeneration?: number;
  phase?: RoundPhase;
  expected?: number;
  received?: number;
  rejected?: number;
  startTime?: string;
  completionTime?: string;
  outputAdapter?: { object: string; sha256: string };
  metrics?: {
    loss?: number;
    /** The round's adapter on the Federation's held-out set, as the aggregator scored it (0..1). */
    accuracy?: number;
    accuracyByType?: Record<string, number>;
    evaluatedExamples?: number;
    uploadBytes?: number;
  };
  clients?: { name: string; state: ClientState; restarts?: number; message?: string }[];
  conditions?: Condition[];
}

export interface FederationRound {
  apiVersion: typeof API_VERSION;
  kind: 'FederationRound';
  metadata: V1ObjectMeta;
  spec: FederationRoundSpec;
  status?: FederationRoundStatus;
}

export const FEDERATIONS = 'federations';
export const ROUNDS = 'federationrounds';

/** Labels on everything the operator creates (the chart's NetworkPolicies select on them). */
export const LABELS = {
  name: 'app.kubernetes.io/name',
  managedBy: 'app.kubernetes.io/managed-by',
  federation: 'fednano.io/federation',
  round: 'fednano.io/round',
  client: 'fednano.io/client',
} as const;
export const MANAGER = 'fednano-operator';
export const FINALIZER = 'fednano.io/nats-cleanup';
