import {
  type AdapterWeights,
  adapterShapes,
  createRankAwareStrategy,
  createStrategy,
  decodeUpdate,
  type RoundAggregator,
  type Strategy,
} from '@fednano/core';
import type { RoundSpec } from '@fednano/wire';

/**
 * One round being collected: the strategy's streaming aggregator plus the clients already counted. Pure state, no
 * I/O: the aggregator service feeds it updates (from the stream, or replayed from the KV record after a restart).
 */
export class RoundCollection {
  readonly shapes: Record<string, readonly number[]>;
  private readonly aggregator: RoundAggregator;
  private readonly counted = new Set<string>();
  private readonly refused = new Set<string>();

  constructor(
    readonly spec: RoundSpec,
    readonly strategy: Strategy,
    base: AdapterWeights,
    readonly maxUpdateBytes: number,
  ) {
    // The global adapter (and so the round's base) is always at the federation's rank.
    this.shapes = adapterShapes(spec.dModel, spec.adapter.rank);
    // Mixed ranks: updates of rank 1..R merged by spec.adapter.rankMerge around the (cached) strategy.
    const merging = spec.ranks
      ? createRankAwareStrategy(
          spec.strategy,
          {
            dModel: spec.dModel,
            adapter: { rank: spec.adapter.rank, alpha: spec.adapter.alpha },
            merge: spec.adapter.rankMerge ?? 'svd',
          },
          strategy,
        )
      : strategy;
    this.aggregator = merging.begin(base, spec.round);
  }

  get round(): number {
    return this.spec.round;
  }

  /** Whether the client already has an accepted or a refused update this round (one answer per client). */
  answered(client: string): boolean {
    return this.counted.has(client) || this.refused.has(client);
  }

  markAnswered(client: string): void {
    this.refused.add(client);
  }

  /** Validates an update for this round from `client` (the subject's client token) and adds it. Throws UpdateRejected. */
  add(client: string, bytes: Uint8Array): { samples: number; loss: number } {
    const u = decodeUpdate(bytes, {
      namespace: this.spec.namespace,
      federation: this.spec.federation,
      round: this.spec.round,
      baseAdapterSha256: this.spec.baseAdapter.sha256,
      shapes: this.shapes,
      requireFisher: this.strategy.needsFisher,
      clientId: client,
      maxBytes: this.maxUpdateBytes,
      ...(this.spec.ranks
        ? {
            rank: {
              dModel: this.spec.dModel,
              max: this.spec.adapter.rank,
              expected: this.spec.ranks[client] ?? this.spec.adapter.rank,
            },
          }
        : {}),
    });
    this.aggregator.add({ client, weights: u.weights, fisher: u.fisher, samples: u.sampleCount });
    this.counted.add(client);
    return { samples: u.sampleCount, loss: u.metrics?.loss ?? Number.NaN };
  }

  finish(): AdapterWeights {
    return this.aggregator.finish();
  }
}

/**
 * Strategies keyed by their settings: server-side optimizers (FedAdam, FedYogi) keep moments across rounds, so the
 * same settings reuse the same instance.
 */
export class StrategyCache {
  private key = '';
  private strategy?: Strategy;

  get(spec: RoundSpec['strategy']): Strategy {
    const key = JSON.stringify(spec);
    if (!this.strategy || key !== this.key) {
      this.strategy = createStrategy(spec);
      this.key = key;
    }
    return this.strategy;
  }
}
