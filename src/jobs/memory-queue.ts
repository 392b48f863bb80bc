// In-process queue for the embedded default (no Redis). Same contract as the BullMQ queue; state is lost on exit.
import type { ActiveJob, InFlightJob, JobHandler, JobQueue, ProcessorHandle, QueueTuning } from './queue.ts';
import { defaultTuning, settlesWithin } from './queue.ts';
import { PermanentJobError, PostponeJob, type EditJobData, type QueueEvent } from './types.ts';

interface Entry {
  data: EditJobData;
  attempt: number;
  priority: number;
  startedAt?: number;
}

export class MemoryQueue implements JobQueue {
  readonly durable = false;
  private readonly waiting: Entry[] = [];
  private readonly active = new Map<string, Entry>();
  /** Ids queued or running: adding one again is a no-op. */
  private readonly known = new Set<string>();
  /** Jobs waiting out a retry backoff or a postponement (BullMQ's "delayed"). */
  private readonly retrying = new Map<string, { entry: Entry; timer: NodeJS.Timeout }>();
  private readonly listeners = new Set<(event: QueueEvent) => void>();
  private handler: JobHandler | null = null;
  private concurrency = 1;
  /** The handlers under way, for close(). */
  private readonly runs = new Set<Promise<void>>();
  private closed = false;

  constructor(private readonly tuning: QueueTuning = defaultTuning) {}

  async ready() {}

  async add(data: EditJobData) {
    if (this.closed) throw new Error('queue is closed');
    if (this.known.has(data.jobId)) return;
    this.known.add(data.jobId);
    this.insert({ data, attempt: 0, priority: data.priority ?? 1 });
    this.pump();
  }

  /** After every waiting job of the same or a better priority (BullMQ's order). */
  private insert(entry: Entry) {
    const at = this.waiting.findIndex((e) => e.priority > entry.priority);
    this.waiting.splice(at < 0 ? this.waiting.length : at, 0, entry);
  }

  async inFlight(): Promise<InFlightJob[]> {
    const waiting = [...this.waiting, ...[...this.retrying.values()].map((r) => r.entry)];
    return [
      ...waiting.map((e, i) => ({ id: e.data.jobId, state: 'waiting' as const, data: e.data, position: i + 1 })),
      ...(await this.running()),
    ];
  }

  async running(): Promise<InFlightJob[]> {
    return [...this.active.values()].map((e) => ({ id: e.data.jobId, state: 'active' as const, data: e.data, startedAt: e.startedAt }));
  }

  /** Finished jobs are forgotten at once here (the core's job records remember them), so they read as missing. */
  async status(jobId: string) {
    return { state: this.known.has(jobId) ? ('pending' as const) : ('missing' as const) };
  }

  async removeWaiting(jobId: string) {
    const retry = this.retrying.get(jobId);
    if (retry) {
      clearTimeout(retry.timer);
      this.retrying.delete(jobId);
      this.known.delete(jobId);
      return true;
    }
    const i = this.waiting.findIndex((e) => e.data.jobId === jobId);
    if (i < 0) return false;
    this.waiting.splice(i, 1);
    this.known.delete(jobId);
    return true;
  }

  onEvent(listener: (event: QueueEvent) => void) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: QueueEvent) {
    for (const listener of this.listeners) listener(event);
  }

  process(handler: JobHandler, concurrency: number): ProcessorHandle {
    this.handler = handler;
    this.concurrency = concurrency;
    this.pump();
    return {
      close: async () => {
        this.handler = null;
        await Promise.allSettled([...this.runs]);
      },
    };
  }

  private pump() {
    while (this.handler && this.active.size < this.concurrency && this.waiting.length) {
      const entry = this.waiting.shift()!;
      const run = this.run(entry, this.handler).finally(() => {
        this.runs.delete(run);
        this.pump();
      });
      this.runs.add(run);
    }
  }

  private async run(entry: Entry, handler: JobHandler) {
    const id = entry.data.jobId;
    entry.attempt += 1;
    entry.startedAt = Date.now();
    this.active.set(id, entry);
    this.emit({ type: 'active', jobId: id });
    const job: ActiveJob = {
      id,
      data: entry.data,
      attempt: entry.attempt,
      startedAt: entry.startedAt,
      progress: async (progress) => this.emit({ type: 'progress', jobId: id, progress }),
    };
    try {
      await handler(job);
      this.active.delete(id);
      this.known.delete(id); // finished ids are remembered by the core's job records (with a TTL)
      this.emit({ type: 'completed', jobId: id });
    } catch (err) {
      this.active.delete(id);
      const permanent = err instanceof PermanentJobError;
      const postponed = err instanceof PostponeJob;
      if (postponed) entry.attempt -= 1;
      if (!this.closed && (postponed || (!permanent && entry.attempt < this.tuning.attempts))) {
        const timer = setTimeout(() => {
          this.retrying.delete(id);
          this.insert(entry);
          this.pump();
        }, postponed ? err.delayMs : this.tuning.backoffMs * 2 ** (entry.attempt - 1));
        this.retrying.set(id, { entry, timer });
        return;
      }
      this.known.delete(id);
      this.emit({ type: 'failed', jobId: id, reason: (err as Error).message });
    }
  }

  async close(options: { timeoutMs?: number } = {}) {
    this.disconnect();
    const running = Promise.allSettled([...this.runs]);
    // Past the timeout the running jobs are left to the process exit (nothing to disconnect in memory).
    if (options.timeoutMs === undefined) await running;
    else await settlesWithin(running, options.timeoutMs);
    this.listeners.clear();
  }

  /** Takes no more jobs and retries none; running jobs are left to finish or die with the process. */
  disconnect() {
    this.closed = true;
    for (const { timer } of this.retrying.values()) clearTimeout(timer);
    this.handler = null;
  }
}
