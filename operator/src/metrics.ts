import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export function operatorMetrics(queueDepth: (controller: string) => number, controllers: string[]) {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    reconcileDuration: new Histogram({
      name: 'fednano_operator_reconcile_duration_seconds',
      help: 'Time of one reconcile, by controller and result (success, error)',
      labelNames: ['controller', 'result'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    queueDepth: new Gauge({
      name: 'fednano_operator_queue_depth',
      help: 'Keys waiting in a controller work queue',
      labelNames: ['controller'],
      registers,
      collect() {
        for (const c of controllers) this.set({ controller: c }, queueDepth(c));
      },
    }),
    retries: new Counter({
      name: 'fednano_operator_retries_total',
      help: 'Reconciles retried with backoff after an error',
      labelNames: ['controller'],
      registers,
    }),
    errors: new Counter({
      name: 'fednano_operator_reconcile_errors_total',
      help: 'Reconciles that failed, by controller and HTTP status of the API error (or none)',
      labelNames: ['controller', 'code'],
      registers,
    }),
    apiRequests: new Counter({
      name: 'fednano_operator_api_requests_total',
      help: 'Kubernetes API writes by verb (reads come from informer caches)',
      labelNames: ['verb'],
      registers,
    }),
    leader: new Gauge({ name: 'fednano_operator_leader', help: '1 while this replica leads', registers }),
  };
}

export type OperatorMetrics = ReturnType<typeof operatorMetrics>;
