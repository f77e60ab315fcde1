/**
 * The service's Prometheus metrics (prom-client), one registry per server so that several servers in
 * one process (tests, a host app) keep their own counts. `GET /metrics` serves `registry.metrics()`.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { BatchCounts } from './batch-queue.js';

export interface ServiceMetrics {
  registry: Registry;
  /** One finished HTTP request: its route pattern (or "unmatched"), status and seconds taken. */
  observeRequest(route: string, method: string, status: number, seconds: number): void;
  /** One answered prediction: where its masks came from and the seconds spent queued + on the model. */
  observePrediction(maskSource: string, seconds: number): void;
}

// Per-image CPU latencies of the tiny model are ~10–100 ms; real-size ones on CPU ~1 s.
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * `queueDepth()` (requests admitted and not yet answered by the model) and `batches()` (the
 * predictor's model batches so far) are read at scrape time.
 */
export function createMetrics(
  queueDepth: () => number,
  maxQueue: number,
  batches: () => BatchCounts | undefined = () => undefined,
): ServiceMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'cxrmask_' });
  const requests = new Counter({
    name: 'cxrmask_http_requests_total',
    help: 'HTTP requests answered, by route, method and status code',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'cxrmask_http_request_duration_seconds',
    help: 'Time from request start to response sent, by route',
    labelNames: ['route'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const predictions = new Histogram({
    name: 'cxrmask_prediction_seconds',
    help: 'Time from admission to prediction (queue wait + segment + overlay + classify), by mask source',
    labelNames: ['mask_source'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  new Gauge({
    name: 'cxrmask_queue_depth',
    help: 'Prediction requests admitted and not yet answered by the model',
    registers: [registry],
    collect() {
      this.set(queueDepth());
    },
  });
  // read from the predictor at scrape time; calls ÷ batches is the mean batch size
  const fromBatches = (name: string, help: string, pick: (c: BatchCounts) => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const c = batches();
        if (!c) return;
        this.reset();
        this.inc(pick(c));
      },
    });
  fromBatches(
    'cxrmask_model_batches_total',
    'Batches the models ran (segment + classify); concurrent requests share one',
    (c) => c.batches,
  );
  fromBatches(
    'cxrmask_model_batch_calls_total',
    'Prediction requests taken into model batches',
    (c) => c.calls,
  );
  fromBatches(
    'cxrmask_model_batch_reruns_total',
    'Requests run again alone because their batch failed',
    (c) => c.rerun,
  );
  new Gauge({
    name: 'cxrmask_queue_limit',
    help: 'Queue depth at which new prediction requests get 503',
    registers: [registry],
  }).set(maxQueue);
  return {
    registry,
    observeRequest(route, method, status, seconds) {
      requests.inc({ route, method, status: String(status) });
      duration.observe({ route }, seconds);
    },
    observePrediction(maskSource, seconds) {
      predictions.observe({ mask_source: maskSource }, seconds);
    },
  };
}
