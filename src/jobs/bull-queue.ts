// BullMQ on Redis: the queue when REDIS_URL is set. Bot and workers are separate processes that scale out.
import { DelayedError, Queue, QueueEvents, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { InFlightJob, JobHandler, JobQueue, ProcessorHandle, QueueTuning } from './queue.ts';
import { defaultTuning, settlesWithin } from './queue.ts';
import type { Lane } from './lanes.ts';
import { PermanentJobError, PostponeJob, type EditJobData, type QueueEvent } from './types.ts';

export const QUEUE_NAME = 'styleclip-edits';
/** Each lane's BullMQ queue (lanes.ts): only workers with PyTorch take from the gradient and training ones. */
export const LANE_QUEUE_NAMES: Record<Lane, string> = {
  edit: QUEUE_NAME,
  gradient: 'styleclip-gradients',
  training: 'styleclip-training',
};

/**
 * Reconnect attempts at most once a second. BullMQ's own backoff grows to 20 s, so after an outage of a few
 * seconds the worker would fetch no job, and the bot queue none, for up to 20 s after Redis was back.
 */
const retryStrategy = (times: number) => Math.min(times * 100, 1000);

export interface BullQueueOptions {
  redisUrl: string;
  /** BullMQ queue name (default QUEUE_NAME). */
  name?: string;
  /** BullMQ key prefix (tests use a unique one). */
  prefix?: string;
  tuning?: QueueTuning;
  /** Subscribe to queue events (the bot does; a worker process does not need to). */
  events?: boolean;
  /** Connection errors (Redis down, auth…); BullMQ reconnects by itself, this is for the logs. */
  onError?: (err: Error, source: 'queue' | 'events' | 'worker') => void;
}

/** BullMQ's error about a job that is no longer in Redis (lost with its data, or removed by hand). */
export function isLostJobError(err: unknown): boolean {
  return /^Missing key for job/.test((err as Error)?.message ?? '');
}

export class BullQueue implements JobQueue {
  readonly durable = true;
  private readonly queue: Queue;
  private readonly events: QueueEvents | null;
  private readonly listeners = new Set<(event: QueueEvent) => void>();
  private readonly workers = new Set<Worker>();
  private readonly tuning: QueueTuning;
  readonly name: string;

  constructor(private readonly options: BullQueueOptions) {
    this.tuning = options.tuning ?? defaultTuning;
    const prefix = options.prefix ?? 'styleclip';
    // The producer fails fast while Redis is down, so the user hears it now rather than never.
    this.name = options.name ?? QUEUE_NAME;
    this.queue = new Queue(this.name, { connection: { url: options.redisUrl, enableOfflineQueue: false, retryStrategy }, prefix });
    this.queue.on('error', (err) => this.reportError(err, 'queue'));
    this.events = options.events === false ? null : new QueueEvents(this.name, { connection: { url: options.redisUrl, retryStrategy }, prefix });
    if (this.events) {
      this.events.on('error', (err) => this.reportError(err, 'events'));
      this.events.on('active', ({ jobId }) => this.emit({ type: 'active', jobId }));
      this.events.on('progress', ({ jobId, data }) => this.emit({ type: 'progress', jobId, progress: Number(data) }));
      this.events.on('completed', ({ jobId }) => this.emit({ type: 'completed', jobId }));
      // Emitted only when a job is finally failed; retries go through 'delayed'/'waiting'.
      this.events.on('failed', ({ jobId, failedReason }) => this.emit({ type: 'failed', jobId, reason: failedReason }));
    }
  }

  /** The same error repeats on every reconnect attempt: each one is reported at most once a minute. */
  private readonly reported = new Map<string, number>();
  private reportError(err: Error, source: 'queue' | 'events' | 'worker') {
    const key = `${source}:${err.message}`;
    const now = Date.now();
    if (now - (this.reported.get(key) ?? -Infinity) < 60_000) return;
    this.reported.set(key, now);
    if (this.reported.size > 100) this.reported.delete(this.reported.keys().next().value!);
    this.options.onError?.(err, source);
  }

  async ready() {
    await this.queue.waitUntilReady();
    await this.events?.waitUntilReady();
  }

  private emit(event: QueueEvent) {
    for (const listener of this.listeners) listener(event);
  }

  onEvent(listener: (event: QueueEvent) => void) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async add(data: EditJobData) {
    await this.queue.add('edit', data, {
      jobId: data.jobId,
      priority: data.priority ?? 1,
      attempts: this.tuning.attempts,
      backoff: { type: 'exponential', delay: this.tuning.backoffMs },
      removeOnComplete: { age: 3600, count: 1000 },
      removeOnFail: { age: 24 * 3600, count: 5000 },
    });
  }

  async inFlight(): Promise<InFlightJob[]> {
    // Run order: unprioritized first (none of ours), then by priority, then retries waiting out a backoff.
    const [waiting, active] = await Promise.all([
      this.queue.getJobs(['waiting', 'prioritized', 'delayed'], 0, -1, true) as Promise<Job<EditJobData>[]>,
      this.running(),
    ]);
    return [...waiting.filter((j) => j?.id).map((j, i) => ({ id: j.id!, state: 'waiting' as const, data: j.data, position: i + 1 })), ...active];
  }

  async running(): Promise<InFlightJob[]> {
    const active = (await this.queue.getJobs(['active'], 0, -1, true)) as Job<EditJobData>[];
    return active.filter((j) => j?.id).map((j) => ({ id: j.id!, state: 'active' as const, data: j.data, startedAt: j.processedOn }));
  }

  async status(jobId: string) {
    const job = await this.queue.getJob(jobId);
    if (!job) return { state: 'missing' as const };
    const state = await job.getState();
    if (state === 'completed') return { state: 'completed' as const };
    if (state === 'failed') return { state: 'failed' as const, reason: job.failedReason };
    return { state: state === 'unknown' ? ('missing' as const) : ('pending' as const) };
  }

  async removeWaiting(jobId: string) {
    const job = await this.queue.getJob(jobId);
    if (!job) return false;
    const state = await job.getState();
    if (state !== 'waiting' && state !== 'prioritized' && state !== 'delayed') return false;
    try {
      await job.remove();
      return true;
    } catch {
      return false; // picked up by a worker meanwhile
    }
  }

  process(handler: JobHandler, concurrency: number): ProcessorHandle {
    const worker = new Worker<EditJobData>(
      this.name,
      async (job, token) => {
        try {
          await handler({
            id: job.id!,
            data: job.data,
            attempt: job.attemptsMade + 1,
            startedAt: job.processedOn ?? Date.now(),
            // A job that vanished from the queue meanwhile (Redis restarted without its data) runs on: its
            // result is stored, and the bot's watchdog delivers it. A lost job is not a failed try.
            progress: (percent) => job.updateProgress(percent).catch((err: Error) => {
              if (!isLostJobError(err)) throw err;
            }),
          });
        } catch (err) {
          if (err instanceof PermanentJobError) throw new UnrecoverableError(err.message);
          if (err instanceof PostponeJob) {
            // BullMQ's way to put a running job back: it waits in "delayed", then rejoins by priority.
            await job.moveToDelayed(Date.now() + err.delayMs, token);
            throw new DelayedError();
          }
          throw err;
        }
      },
      {
        connection: { url: this.options.redisUrl, maxRetriesPerRequest: null, retryStrategy },
        prefix: this.options.prefix ?? 'styleclip',
        concurrency,
        lockDuration: this.tuning.lockDurationMs,
        stalledInterval: this.tuning.stalledIntervalMs,
        maxStalledCount: 2,
      },
    );
    worker.on('error', (err) => this.reportError(err, 'worker'));
    this.workers.add(worker);
    return {
      close: async () => {
        // Stays in `workers` until closed, so a forced disconnect() still reaches a close that hangs.
        await worker.close();
        this.workers.delete(worker);
      },
    };
  }

  private closing: Promise<void> | null = null;

  async close(options: { timeoutMs?: number } = {}) {
    this.closing ??= (async () => {
      // While Redis is unreachable these never return: running jobs cannot be moved to completed and
      // the connections wait to reconnect. Hence the timeout and disconnect().
      await Promise.all([...this.workers].map((w) => w.close()));
      await this.events?.close();
      await this.queue.close();
      this.listeners.clear();
    })();
    if (options.timeoutMs === undefined) return this.closing;
    if (await settlesWithin(this.closing, options.timeoutMs)) return this.closing;
    this.disconnect();
  }

  disconnect() {
    this.listeners.clear();
    // BullMQ's disconnect() waits for an 'end' event that ioredis never emits while it is reconnecting;
    // the sockets close and reconnects stop all the same, so nothing here is awaited.
    const drop = (c: { disconnect(): Promise<void> }) => void c.disconnect().catch(() => {});
    for (const w of this.workers) drop(w);
    if (this.events) drop(this.events);
    drop(this.queue);
  }
}
