import { readFile } from 'node:fs/promises';
import {
  federationSpecSchemas,
  type LocalTrainingConfig,
  type RankMerge,
  rankMergeProblem,
  type StrategySpec,
} from '@fednano/core';
import { Ajv, type ErrorObject } from 'ajv';
import { parse } from 'yaml';
import { type AdversarySpec, ATTACK_KINDS } from './adversary.js';

/**
 * The simulation config. `spec` carries the federation settings under the same names the Federation and
 * FederationRound resources use (model, adapter, strategy, training, participation, rounds); `spec.simulation`
 * describes the simulated clients and their data, the only part that changes when a config moves to a cluster.
 */
export interface SimulationConfig {
  apiVersion: 'fednano.io/v1alpha1';
  kind: 'Simulation';
  metadata: { name: string };
  spec: {
    model: { path: string };
    /** rank: the global adapter's (the largest a client trains); rankMerge: how mixed ranks merge (default svd). */
    adapter: { rank: number; alpha: number; rankMerge?: RankMerge };
    strategy: {
      name: 'fedavg' | 'fedprox' | 'fisher' | 'fedadam' | 'fedyogi' | 'median' | 'trimmed-mean';
      mu?: number;
      lambda?: 'uniform' | 'samples';
      epsilon?: number;
      fisherCap?: number;
      serverLr?: number;
      serverMomentum?: number;
      trim?: number;
      clipNorm?: number;
      dp?: { clipNorm: number; noiseMultiplier: number };
    };
    /** Local training as core's LocalTrainingConfig, with steps named per round and the seed set per client. */
    training: Omit<LocalTrainingConfig, 'steps' | 'seed' | 'proximalMu'> & {
      localSteps: number;
      /** Examples per client for the Fisher diagonal (Fisher merging). */
      fisherSamples?: number;
    };
    participation: { clientsPerRound?: number; fraction?: number; minClients?: number };
    rounds: number;
    /** Element type of adapter updates on the wire. */
    updateEncoding?: 'float32' | 'float16' | 'bfloat16' | 'int8';
    simulation: {
      clients: number;
      seed: number;
      /**
       * federated (NanoAdapters with the strategy), centralized (all data, one trainer), local-only (no
       * aggregation), fedavg-lora (baseline: whole model on every client, LoRA inside the LLM, FedAvg).
       */
      method: 'federated' | 'centralized' | 'local-only' | 'fedavg-lora';
      data: {
        domains: ('fashion' | 'digits' | 'emoji')[];
        partition: { kind: 'iid' | 'dirichlet' | 'domain' | 'question-type'; alpha?: number };
        /** Cap on each client's training questions (deterministic subsample). */
        examplesPerClient?: number;
      };
      evaluation: { testImagesPerDomain: number };
      /**
       * Byzantine clients (robustness experiments, method federated): `clients` of the simulated clients, chosen
       * from the seed, replace their update Δ (trained − global) before sending it: `scale` sends s·Δ, `sign-flip`
       * −s·Δ, `random` Gaussian noise of norm s·‖Δ‖ (s = `scale`, default 10). With Fisher merging they send their
       * Fisher diagonal times `fisherScale` (default 1). See adversary.ts and docs/robustness.md.
       */
      adversaries?: AdversarySpec;
      /**
       * How the simulated clients do split training (method federated): `labelPrivate` keeps targets out of the
       * llm-host requests; `labelNoise` adds randomized response to the labels the gradients use (docs/security.md).
       */
      split?: { labelPrivate?: boolean; labelNoise?: number };
      /**
       * Heterogeneous clients (method federated): client i trains NanoAdapters of rank adapterRanks[i mod n], each at
       * most spec.adapter.rank (the global adapter's); the strategy merges them with spec.adapter.rankMerge.
       */
      adapterRanks?: number[];
    };
  };
}

const positive = { type: 'number', exclusiveMinimum: 0 } as const;
const positiveInt = { type: 'integer', minimum: 1 } as const;
const crd = federationSpecSchemas();

export const SIMULATION_SCHEMA = {
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  additionalProperties: false,
  properties: {
    apiVersion: { const: 'fednano.io/v1alpha1' },
    kind: { const: 'Simulation' },
    metadata: {
      type: 'object',
      required: ['name'],
      properties: { name: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$' } },
    },
    spec: {
      type: 'object',
      required: ['model', 'adapter', 'strategy', 'training', 'participation', 'rounds', 'simulation'],
      additionalProperties: false,
      properties: {
        model: {
          type: 'object',
          required: ['path'],
          additionalProperties: false,
          properties: { path: { type: 'string', minLength: 1 } },
        },
        // Federation settings: the Federation CRD's schemas (crds/), the single source of truth.
        adapter: crd.adapter!,
        strategy: crd.strategy!,
        training: crd.training!,
        participation: crd.participation!,
        rounds: crd.rounds!,
        updateEncoding: crd.updateEncoding!,
        simulation: {
          type: 'object',
          required: ['clients', 'seed', 'method', 'data', 'evaluation'],
          additionalProperties: false,
          properties: {
            clients: { type: 'integer', minimum: 1, maximum: 10000 },
            seed: { type: 'integer', minimum: 0 },
            method: { enum: ['federated', 'centralized', 'local-only', 'fedavg-lora'] },
            data: {
              type: 'object',
              required: ['domains', 'partition'],
              additionalProperties: false,
              properties: {
                domains: {
                  type: 'array',
                  minItems: 1,
                  uniqueItems: true,
                  items: { enum: ['fashion', 'digits', 'emoji'] },
                },
                partition: {
                  type: 'object',
                  required: ['kind'],
                  additionalProperties: false,
                  properties: { kind: { enum: ['iid', 'dirichlet', 'domain', 'question-type'] }, alpha: positive },
                },
                examplesPerClient: positiveInt,
              },
            },
            evaluation: {
              type: 'object',
              required: ['testImagesPerDomain'],
              additionalProperties: false,
              properties: { testImagesPerDomain: positiveInt },
            },
            split: {
              type: 'object',
              additionalProperties: false,
              properties: {
                labelPrivate: { type: 'boolean' },
                labelNoise: { type: 'number', minimum: 0, maximum: 1 },
              },
            },
            adversaries: {
              type: 'object',
              required: ['clients', 'attack'],
              additionalProperties: false,
              properties: {
                clients: { type: 'integer', minimum: 0 },
                attack: { enum: [...ATTACK_KINDS] },
                scale: positive,
                fisherScale: positive,
              },
            },
            adapterRanks: { type: 'array', minItems: 1, maxItems: 10000, items: positiveInt },
          },
        },
      },
    },
  },
};

/** A config the user can fix: the message names the file and the field. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

const validate = new Ajv({ allErrors: true, strict: false }).compile(SIMULATION_SCHEMA);
const MAX_CONFIG_BYTES = 1 << 20;

function describe(e: ErrorObject): string {
  const at = `${e.instancePath.replace(/^\//, '').replace(/\//g, '.') || '(top level)'}`;
  if (e.keyword === 'additionalProperties')
    return `${at}: unknown field '${(e.params as { additionalProperty: string }).additionalProperty}'`;
  if (e.keyword === 'enum')
    return `${at}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
  return `${at}: ${e.message}`;
}

/** Validates a parsed config (schema, then the cross-field rules a schema cannot state). */
export function checkConfig(value: unknown, source = 'config'): SimulationConfig {
  if (!validate(value)) throw new ConfigError(`${source}: ${(validate.errors ?? []).map(describe).join('; ')}`);
  const c = value as unknown as SimulationConfig;
  const s = c.spec;
  const problems: string[] = [];
  const p = s.participation;
  if ((p.clientsPerRound === undefined) === (p.fraction === undefined))
    problems.push('spec.participation: give exactly one of clientsPerRound or fraction');
  if (p.clientsPerRound !== undefined && p.clientsPerRound > s.simulation.clients)
    problems.push(
      `spec.participation.clientsPerRound (${p.clientsPerRound}) exceeds spec.simulation.clients (${s.simulation.clients})`,
    );
  const perRound = p.clientsPerRound ?? Math.max(1, Math.round((p.fraction ?? 1) * s.simulation.clients));
  if (p.minClients !== undefined && p.minClients > perRound)
    problems.push(`spec.participation.minClients (${p.minClients}) exceeds the clients per round (${perRound})`);
  if (s.simulation.method === 'fedavg-lora' && s.strategy.name !== 'fedavg')
    problems.push('spec.simulation.method fedavg-lora aggregates with strategy fedavg');
  if (s.strategy.name === 'fedprox' && s.strategy.mu === undefined)
    problems.push('spec.strategy.mu is required for fedprox');
  if (s.strategy.name === 'trimmed-mean' && s.strategy.trim === undefined)
    problems.push('spec.strategy.trim is required for trimmed-mean');
  const part = s.simulation.data.partition;
  if ((part.kind === 'dirichlet' || part.kind === 'question-type') && part.alpha === undefined)
    problems.push(`spec.simulation.data.partition.alpha is required for ${part.kind}`);
  if (part.kind === 'domain' && s.simulation.data.domains.length < 2)
    problems.push('spec.simulation.data.partition: domain skew needs at least two domains');
  const split = s.simulation.split;
  if (split?.labelNoise && !split.labelPrivate)
    problems.push('spec.simulation.split.labelNoise needs spec.simulation.split.labelPrivate: true');
  if (split?.labelPrivate && s.simulation.method !== 'federated')
    problems.push(`spec.simulation.split applies to method federated only (method is ${s.simulation.method})`);
  const adv = s.simulation.adversaries;
  if (adv) {
    if (adv.clients > s.simulation.clients)
      problems.push(
        `spec.simulation.adversaries.clients (${adv.clients}) exceeds spec.simulation.clients (${s.simulation.clients})`,
      );
    if (s.simulation.method !== 'federated')
      problems.push(
        `spec.simulation.adversaries: only method federated sends updates (method is ${s.simulation.method}); remove adversaries`,
      );
    if (adv.fisherScale !== undefined && s.strategy.name !== 'fisher')
      problems.push(
        'spec.simulation.adversaries.fisherScale applies only to strategy fisher (the only one using Fisher)',
      );
  }
  problems.push(...rankProblems(s));
  if (problems.length) throw new ConfigError(`${source}: ${problems.join('; ')}`);
  return c;
}

/** Per-client ranks: within the global rank, federated only, and a strategy the rank merge can weigh. */
function rankProblems(s: SimulationConfig['spec']): string[] {
  const ranks = s.simulation.adapterRanks;
  if (!ranks) return [];
  const problems: string[] = [];
  const over = ranks.filter((r) => r > s.adapter.rank);
  if (over.length)
    problems.push(
      `spec.simulation.adapterRanks: ${over.join(', ')} exceed spec.adapter.rank (${s.adapter.rank}), the global adapter's rank`,
    );
  if (s.simulation.method !== 'federated')
    problems.push(`spec.simulation.adapterRanks applies to method federated only (method is ${s.simulation.method})`);
  const problem = rankMergeProblem(s.strategy as StrategySpec, s.adapter.rankMerge ?? 'svd');
  if (problem && ranks.some((r) => r !== s.adapter.rank)) problems.push(`spec.adapter.rankMerge: ${problem}`);
  return problems;
}

export function parseConfig(text: string, source = 'config'): SimulationConfig {
  if (text.length > MAX_CONFIG_BYTES) throw new ConfigError(`${source}: larger than ${MAX_CONFIG_BYTES} bytes`);
  let value: unknown;
  try {
    value = parse(text, { maxAliasCount: 100 });
  } catch (e) {
    throw new ConfigError(`${source}: not valid YAML (${(e as Error).message.split('\n')[0]})`);
  }
  return checkConfig(value, source);
}

export async function loadConfig(path: string): Promise<SimulationConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ConfigError(
      `${path}: cannot read the config (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  return parseConfig(text, path);
}

/** Client i's adapter rank: spec.simulation.adapterRanks[i mod n], or the federation's rank without it. */
export const clientRank = (c: SimulationConfig, index: number): number =>
  c.spec.simulation.adapterRanks?.[index % c.spec.simulation.adapterRanks.length] ?? c.spec.adapter.rank;

export const clientsPerRound = (c: SimulationConfig): number =>
  c.spec.participation.clientsPerRound ??
  Math.max(1, Math.round((c.spec.participation.fraction ?? 1) * c.spec.simulation.clients));
