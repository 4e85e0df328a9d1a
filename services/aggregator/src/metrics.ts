import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The aggregator's Prometheus metrics. */
export function aggregatorMetrics() {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    received: new Counter({
      name: 'fednano_aggregator_updates_received_total',
      help: 'Update messages delivered by the JetStream consumer (redeliveries included)',
      registers,
    }),
    accepted: new Counter({
      name: 'fednano_aggregator_updates_accepted_total',
      help: 'Updates validated and aggregated (once per round and client)',
      registers,
    }),
    rejected: new Counter({
      name: 'fednano_aggregator_updates_rejected_total',
      help: 'Updates refused, by reason (codec reasons, not-participant, stale-round, unknown-round, payload)',
      labelNames: ['reason'],
      registers,
    }),
    duplicates: new Counter({
      name: 'fednano_aggregator_updates_duplicate_total',
      help: 'Second updates from a client already counted this round (dropped)',
      registers,
    }),
    updateBytes: new Histogram({
      name: 'fednano_aggregator_update_size_bytes',
      help: 'Encoded size of accepted updates',
      buckets: [1e3, 1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7, 3e7],
      registers,
    }),
    byReference: new Counter({
      name: 'fednano_aggregator_updates_by_reference_total',
      help: 'Updates too large for one message, fetched from the Object Store',
      registers,
    }),
    rounds: new Counter({
      name: 'fednano_aggregator_rounds_total',
      help: 'Rounds decided, by outcome (Aggregated or Failed)',
      labelNames: ['outcome'],
      registers,
    }),
    finishDuration: new Histogram({
      name: 'fednano_aggregator_finish_duration_seconds',
      help: 'Time to finish a round: merge, store the adapter, record the result',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    }),
    accuracy: new Gauge({
      name: 'fednano_aggregator_global_adapter_accuracy_ratio',
      help: 'Held-out accuracy of the latest global adapter (0..1); unset until one was evaluated',
      registers,
    }),
    evaluations: new Counter({
      name: 'fednano_aggregator_evaluations_total',
      help: 'Global adapters scored on the held-out set, by outcome (ok, or failed: the set is missing or unreadable)',
      labelNames: ['outcome'],
      registers,
    }),
    evaluationDuration: new Histogram({
      name: 'fednano_aggregator_evaluation_duration_seconds',
      help: 'Time to score a global adapter on the held-out set (successful scorings; the first includes preparing the set)',
      buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 300],
      registers,
    }),
    activeRound: new Gauge({
      name: 'fednano_aggregator_active_round',
      help: 'Index of the round being collected (0 when none)',
      registers,
    }),
  };
}

export type AggregatorMetrics = ReturnType<typeof aggregatorMetrics>;
