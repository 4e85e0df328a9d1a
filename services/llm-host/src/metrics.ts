import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The llm-host's Prometheus metrics (names per CONVENTIONS.md: fednano_<component>_<what>_<unit>). */
/** `queueDepth` is read at each scrape. */
export function llmHostMetrics(queueDepth: () => number = () => 0) {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    requestDuration: new Histogram({
      name: 'fednano_llmhost_request_duration_seconds',
      help: 'Time from receiving a request to answering it, by method and gRPC status',
      labelNames: ['method', 'code'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    batchSize: new Histogram({
      name: 'fednano_llmhost_batch_size_samples',
      help: 'Samples per ONNX Runtime run (before padding), by kind of run',
      labelNames: ['kind'],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128],
      registers,
    }),
    batchDuration: new Histogram({
      name: 'fednano_llmhost_batch_duration_seconds',
      help: 'Time of one ONNX Runtime run, by kind of run',
      labelNames: ['kind'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    samples: new Counter({
      name: 'fednano_llmhost_samples_total',
      help: 'Samples computed (rate() gives samples/s), by kind of run',
      labelNames: ['kind'],
      registers,
    }),
    paddedSamples: new Counter({
      name: 'fednano_llmhost_padded_samples_total',
      help: 'Padding rows added to reach a shape bucket',
      labelNames: ['kind'],
      registers,
    }),
    queueDepth: new Gauge({
      name: 'fednano_llmhost_queue_depth_samples',
      help: 'Samples waiting for a batch',
      registers,
      collect() {
        this.set(queueDepth());
      },
    }),
    refused: new Counter({
      name: 'fednano_llmhost_requests_refused_total',
      help: 'Requests refused by certificate authorization, by reason (other-federation, revoked, expired, ...)',
      labelNames: ['reason'],
      registers,
    }),
    receivedBytes: new Counter({
      name: 'fednano_llmhost_received_bytes_total',
      help: 'Tensor bytes received in requests',
      labelNames: ['method'],
      registers,
    }),
    sentBytes: new Counter({
      name: 'fednano_llmhost_sent_bytes_total',
      help: 'Tensor bytes sent in responses',
      labelNames: ['method'],
      registers,
    }),
  };
}

export type LlmHostMetrics = ReturnType<typeof llmHostMetrics>;
