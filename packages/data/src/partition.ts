import { dirichlet, shuffle } from './random.js';

/** Client k's items, as indices into the list that was partitioned. */
export type Partition = number[][];

export type PartitionSpec =
  | { kind: 'iid' }
  /** Label skew: each class is divided among clients in Dirichlet(alpha) proportions; small alpha, strong skew. */
  | { kind: 'dirichlet'; alpha: number; minPerClient?: number }
  /** Domain skew: each client owns the data of one domain, domains assigned round-robin. */
  | { kind: 'domain' }
  /** Question-type skew: Dirichlet(alpha) over question types instead of labels. */
  | { kind: 'question-type'; alpha: number; minPerClient?: number };

export interface PartitionKeys {
  labels: readonly number[];
  domains?: readonly string[];
  types?: readonly string[];
}

export function partition(keys: PartitionKeys, clients: number, spec: PartitionSpec, random: () => number): Partition {
  if (!Number.isInteger(clients) || clients < 1)
    throw new RangeError(`clients must be a positive integer, got ${clients}`);
  const n = keys.labels.length;
  switch (spec.kind) {
    case 'iid':
      return deal(shuffle([...Array(n).keys()], random), clients);
    case 'dirichlet':
      return dirichletSkew(keys.labels, clients, spec.alpha, spec.minPerClient ?? 1, random);
    case 'question-type': {
      if (!keys.types) throw new Error('question-type partitioning needs the question type of every item');
      return dirichletSkew(toIds(keys.types), clients, spec.alpha, spec.minPerClient ?? 1, random);
    }
    case 'domain': {
      if (!keys.domains) throw new Error('domain partitioning needs the domain of every item');
      const domains = [...new Set(keys.domains)].sort();
      if (clients < domains.length)
        throw new Error(`domain skew needs at least ${domains.length} clients (one per domain)`);
      const out: Partition = Array.from({ length: clients }, () => []);
      domains.forEach((d, k) => {
        const owners = Array.from({ length: clients }, (_, c) => c).filter((c) => c % domains.length === k);
        const items = shuffle(
          keys.domains!.flatMap((x, i) => (x === d ? [i] : [])),
          random,
        );
        for (const [j, part] of deal(items, owners.length).entries()) out[owners[j]!]!.push(...part);
      });
      return out.map((p) => p.sort((a, b) => a - b));
    }
  }
}

function toIds(values: readonly string[]): number[] {
  const ids = new Map<string, number>();
  return values.map((v) => {
    if (!ids.has(v)) ids.set(v, ids.size);
    return ids.get(v)!;
  });
}

/** Round-robin dealing: sizes differ by at most one. */
function deal(items: number[], clients: number): Partition {
  const out: Partition = Array.from({ length: clients }, () => []);
  for (const [i, item] of items.entries()) out[i % clients]!.push(item);
  return out.map((p) => p.sort((a, b) => a - b));
}

/**
 * Per class, draws client shares from Dirichlet(alpha) and cuts the shuffled class items at those shares. Redraws
 * (up to 100 times) until every client has at least minPerClient items, as is usual for this benchmark split.
 */
function dirichletSkew(
  labels: readonly number[],
  clients: number,
  alpha: number,
  minPerClient: number,
  random: () => number,
): Partition {
  if (!(alpha > 0)) throw new RangeError(`alpha must be > 0, got ${alpha}`);
  if (minPerClient * clients > labels.length)
    throw new Error(`${labels.length} items cannot give ${clients} clients ${minPerClient} each`);
  const classes = [...new Set(labels)].sort((a, b) => a - b);
  for (let attempt = 0; attempt < 100; attempt++) {
    const out: Partition = Array.from({ length: clients }, () => []);
    for (const c of classes) {
      const items = shuffle(
        labels.flatMap((l, i) => (l === c ? [i] : [])),
        random,
      );
      const shares = dirichlet(clients, alpha, random);
      let start = 0;
      let cumulative = 0;
      shares.forEach((share, k) => {
        cumulative += share;
        const end = k === clients - 1 ? items.length : Math.round(cumulative * items.length);
        out[k]!.push(...items.slice(start, end));
        start = end;
      });
    }
    if (out.every((p) => p.length >= minPerClient)) return out.map((p) => p.sort((a, b) => a - b));
  }
  throw new Error(
    `could not give every client ${minPerClient} items with alpha=${alpha}; raise alpha or lower minPerClient`,
  );
}

export interface ClientStats {
  client: number;
  count: number;
  /** Items per class label. */
  histogram: number[];
  /** Share of the client's most common label. */
  dominantShare: number;
  /** Shannon entropy of the label distribution, in bits. */
  entropyBits: number;
}

export function partitionStats(p: Partition, labels: readonly number[], classes: number): ClientStats[] {
  return p.map((items, client) => {
    const histogram = new Array<number>(classes).fill(0);
    for (const i of items) histogram[labels[i]!]!++;
    const count = items.length;
    const probs = histogram.filter((h) => h > 0).map((h) => h / count);
    return {
      client,
      count,
      histogram,
      dominantShare: count ? Math.max(...histogram) / count : 0,
      entropyBits: -probs.reduce((a, q) => a + q * Math.log2(q), 0),
    };
  });
}
