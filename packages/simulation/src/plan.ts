import type { Example } from '@fednano/core';
import {
  type Domain,
  type ImageSet,
  loadDomain,
  partition,
  rng,
  shuffle,
  type VqaExample,
  vqaExamples,
} from '@fednano/data';
import type { SimulationConfig } from './config.js';
import type { NanoEdgeCache } from './prepare.js';

/**
 * Who holds which questions, and which clients train in which round with which seed: everything both `simulate`
 * and `run` derive from a config and its seed, so the two agree sample for sample.
 */
export interface FederationPlan {
  sets: Map<Domain, ImageSet>;
  clients: { id: string; questions: VqaExample[] }[];
  test: VqaExample[];
}

export async function planFederation(config: SimulationConfig, recipeSeed: number): Promise<FederationPlan> {
  const sim = config.spec.simulation;
  const sets = new Map<Domain, ImageSet>();
  const train: VqaExample[] = [];
  const test: VqaExample[] = [];
  let labelOffset = 0;
  for (const domain of sim.data.domains) {
    const { set, splits } = await loadDomain(domain, recipeSeed);
    sets.set(domain, set);
    train.push(...vqaExamples(set, splits.train).map((e) => ({ ...e, label: e.label + labelOffset })));
    test.push(
      ...vqaExamples(set, shuffle([...splits.test], rng(sim.seed + 7)).slice(0, sim.evaluation.testImagesPerDomain)),
    );
    labelOffset += set.classNames.length;
  }
  const parts = partition(
    { labels: train.map((e) => e.label), domains: train.map((e) => e.domain), types: train.map((e) => e.type) },
    sim.clients,
    { kind: sim.data.partition.kind, alpha: sim.data.partition.alpha ?? 1 } as never,
    rng(sim.seed),
  );
  const clients = parts.map((idx, k) => ({
    id: `client-${k}`,
    questions: shuffle(
      idx.map((i) => train[i]!),
      rng(sim.seed * 7919 + k),
    ).slice(0, sim.data.examplesPerClient ?? idx.length),
  }));
  const empty = clients.filter((c) => c.questions.length === 0);
  if (empty.length)
    throw new Error(`${empty.map((c) => c.id).join(', ')} received no data; use fewer clients or a larger alpha`);
  return { sets, clients, test };
}

/** The clients that train in a round. */
export const selectClients = <T>(clients: readonly T[], seed: number, round: number, perRound: number): T[] =>
  shuffle([...clients], rng(seed * 104729 + round)).slice(0, perRound);

/** The local-training seed of the client at `index` (its position in the plan) in `round`. */
export const clientSeed = (seed: number, round: number, index: number): number => seed * 31 + round * 1000 + index;

/** NanoEdge features of questions, domain by domain in the sets' order (the order training samples from). */
export async function prepareExamples(
  edge: NanoEdgeCache,
  sets: ReadonlyMap<Domain, ImageSet>,
  questions: readonly VqaExample[],
): Promise<Example[]> {
  const out: Example[] = [];
  for (const [domain, set] of sets)
    out.push(
      ...(await edge.examples(
        set,
        questions.filter((q) => q.domain === domain),
      )),
    );
  return out;
}
