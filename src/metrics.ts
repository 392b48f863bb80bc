// Prometheus metrics. One registry per process part (bot, worker) so tests can run several side by side.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly queueDepth = new Gauge({
    name: 'styleclip_queue_depth',
    help: 'Jobs in the queue by state',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });
  readonly jobLatency = new Histogram({
    name: 'styleclip_job_latency_seconds',
    help: 'From submission to result, by outcome',
    labelNames: ['outcome'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  readonly batchSize = new Histogram({
    name: 'styleclip_batch_size',
    help: 'Jobs per synthesis call',
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [this.registry],
  });
  readonly engineSeconds = new Histogram({
    name: 'styleclip_engine_seconds',
    help: 'Engine time per batch (one observation per synthesis call, not per job), by stage: engine = sample, edit and render; encode = image encoding',
    labelNames: ['stage'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
    registers: [this.registry],
  });
  readonly failures = new Counter({
    name: 'styleclip_job_failures_total',
    help: 'Failed job attempts by cause, counted by the worker: every failed try counts, including tries that are retried later and cancellations (cause="cancelled"); styleclip_jobs_total counts each job once, by final status',
    labelNames: ['cause'] as const,
    registers: [this.registry],
  });
  readonly jobs = new Counter({
    name: 'styleclip_jobs_total',
    help: 'Jobs by final status',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly postponed = new Counter({
    name: 'styleclip_jobs_postponed_total',
    help: 'Job starts put back in the queue by a running cap (cap="user|server"); each bounce counts',
    labelNames: ['cap'] as const,
    registers: [this.registry],
  });
  readonly refusals = new Counter({
    name: 'styleclip_refusals_total',
    help: 'Requests refused before queueing, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor(options: { defaults?: boolean } = {}) {
    if (options.defaults) collectDefaultMetrics({ register: this.registry });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
