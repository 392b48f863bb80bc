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
  readonly gradientRunSeconds = new Histogram({
    name: 'styleclip_gradient_run_seconds',
    help: 'Time of the PyTorch loop of one gradient job (an optimization, a mapper training), by method',
    labelNames: ['method'] as const,
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400],
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

  readonly redisUp = new Gauge({
    name: 'styleclip_redis_up',
    help: 'Whether this process reaches Redis now (1) or not (0); absent in embedded mode',
    registers: [this.registry],
  });
  readonly redisOutages = new Counter({
    name: 'styleclip_redis_outages_total',
    help: 'Times this process lost its Redis connection (one per outage, however many calls failed meanwhile)',
    registers: [this.registry],
  });
  readonly riddenOut = new Counter({
    name: 'styleclip_jobs_ridden_out_total',
    help: 'Jobs that met a Redis outage while a worker ran them, by outcome: finished = written once Redis was back, no try spent; handed_back = the outage outlasted REDIS_OUTAGE_MS, the job went back to the queue with no try spent',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly lostJobs = new Counter({
    name: 'styleclip_jobs_lost_total',
    help: 'Jobs the bot awaited that the queue no longer knew or never reported, found by the watchdog, by what it did: requeued (Redis lost its data; the bot re-queued the request it holds), told (the user was told to run it again), recovered (the job had finished but its event was missed: the result was delivered)',
    labelNames: ['action'] as const,
    registers: [this.registry],
  });
  readonly awaited = new Gauge({
    name: 'styleclip_jobs_awaited',
    help: "Jobs this bot process submitted and still awaits a final reply for (the watchdog's list)",
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
