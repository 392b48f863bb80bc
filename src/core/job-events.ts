// Queue events become job updates for this process's adapters: queue positions, progress, and the one final
// reply per job (claimed across all bot processes). A final event that meets a Redis restart is retried so
// its reply is not lost.
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { JobQueue } from '../jobs/queue.ts';
import { isFinal, isTraining, OPTIMIZE_START_PROGRESS, type EditJobData, type Platform, type QueueEvent, type ResultMeta, type StepProgress } from '../jobs/types.ts';
import { laneOf } from '../jobs/lanes.ts';
import { getJSON, isRedisDown, type Store } from '../state/store.ts';
import { keys } from '../state/keys.ts';
import { describeProgress, describeResult, describeSpec } from './captions.ts';
import type { JobUpdate } from './types.ts';

export type UpdateListener = (update: JobUpdate) => void | Promise<void>;

export interface JobEventsOptions {
  queue: JobQueue;
  store: Store;
  metrics: Metrics;
  log: Logger;
  resultTtlS: number;
}

/** Final events retried this often while Redis is away (with backoff up to 5 s). */
const FINAL_RETRIES = 12;
/** Position updates go out at most this often. */
const POSITIONS_EVERY_MS = 500;

export class JobEvents {
  private readonly listeners = new Map<Platform, Set<UpdateListener>>();
  private readonly shownPosition = new Map<string, number>();
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  /** Events being handled, so a shutdown can wait for the replies under way. */
  private readonly handling = new Set<Promise<void>>();
  private readonly finalListeners = new Set<(jobId: string) => void>();
  private positionTimer: NodeJS.Timeout | null = null;
  private positionsAt = 0;
  private readonly unsubscribe: () => void;

  constructor(private readonly o: JobEventsOptions) {
    this.unsubscribe = o.queue.onEvent((event) => this.handle(event));
  }

  onUpdate(platform: Platform, listener: UpdateListener): () => void {
    const set = this.listeners.get(platform) ?? new Set();
    set.add(listener);
    this.listeners.set(platform, set);
    return () => set.delete(listener);
  }

  /** Whether this process's adapters serve `platform` (else another bot process delivers its updates). */
  serves(platform: Platform): boolean {
    return !!this.listeners.get(platform)?.size;
  }

  /** Called with a job's id once its final reply is claimed, here or (claim taken) by another process. */
  onFinal(listener: (jobId: string) => void): void {
    this.finalListeners.add(listener);
  }

  /** Sends an update to this process's adapters; false when another process handles it (or already did). */
  async deliver(data: EditJobData, update: Omit<JobUpdate, 'jobId' | 'target' | 'requesterId'>): Promise<boolean> {
    const subscribers = this.listeners.get(data.platform);
    if (!subscribers?.size) return false; // another bot process serves this platform
    if (isFinal(update.status)) {
      // Final updates are claimed once across all bot processes: each user gets exactly one result message.
      const mine = await this.o.store.setNX(keys.claim(data.jobId, 'final'), '1', this.o.resultTtlS);
      for (const listener of this.finalListeners) listener(data.jobId);
      if (!mine) return false;
    }
    const full: JobUpdate = { ...update, jobId: data.jobId, target: data.target, requesterId: data.requesterId };
    for (const listener of subscribers) {
      try {
        await listener(full);
      } catch (err) {
        this.o.log.error({ jobId: data.jobId, err: (err as Error).message }, 'update listener failed');
      }
    }
    return true;
  }

  /** A job was just queued at `position` (the submission's reply says so). */
  queuedAt(jobId: string, position: number): void {
    this.shownPosition.set(jobId, position);
  }

  /** Queue positions moved (a job started or was removed): tell waiting jobs their new place, at most twice a second. */
  positionsChanged(): void {
    if (this.positionTimer) return;
    this.positionTimer = setTimeout(() => {
      this.positionTimer = null;
      this.positionsAt = Date.now();
      this.updatePositions().catch((err) => {
        if (!isRedisDown(err)) this.o.log.warn({ err: (err as Error).message }, 'position update failed');
      });
    }, Math.max(0, this.positionsAt + POSITIONS_EVERY_MS - Date.now()));
    this.positionTimer.unref();
  }

  /** Resolves once the replies under way are out. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.handling]);
  }

  get underWay(): number {
    return this.handling.size;
  }

  close(): void {
    this.unsubscribe();
    if (this.positionTimer) clearTimeout(this.positionTimer);
    for (const timer of this.retryTimers) clearTimeout(timer);
  }

  private async updatePositions(): Promise<void> {
    const waiting = (await this.o.queue.inFlight()).filter((j) => j.state === 'waiting' && this.listeners.get(j.data.platform)?.size);
    const live = new Set(waiting.map((j) => j.id));
    for (const id of this.shownPosition.keys()) if (!live.has(id)) this.shownPosition.delete(id);
    for (const j of waiting) {
      if (this.shownPosition.get(j.id) === j.position) continue;
      this.shownPosition.set(j.id, j.position!);
      await this.deliver(j.data, { status: 'queued', position: j.position, text: `Queued ${describeSpec(j.data.spec)} — position ${j.position}.` });
    }
  }

  private handle(event: QueueEvent, attempt = 0): void {
    const handled = this.onQueueEvent(event).catch((err) => {
      const final = event.type === 'completed' || event.type === 'failed';
      if (final && isRedisDown(err) && attempt < FINAL_RETRIES) {
        const timer = setTimeout(() => {
          this.retryTimers.delete(timer);
          this.handle(event, attempt + 1);
        }, Math.min(250 * 2 ** attempt, 5000));
        this.retryTimers.add(timer);
        return;
      }
      // Past the retries the watchdog (watchdog.ts) finds the job finished but unanswered, and answers it.
      if (!isRedisDown(err)) this.o.log.error({ jobId: event.jobId, event: event.type, err: (err as Error).message }, 'event handling failed');
    });
    this.handling.add(handled);
    void handled.finally(() => this.handling.delete(handled));
  }

  private async onQueueEvent(event: QueueEvent): Promise<void> {
    if (event.type === 'active') {
      // Others move up. The job itself is shown running at its first progress report: a job over its
      // running cap goes back to the queue right after it starts.
      this.positionsChanged();
      return;
    }
    const data = await getJSON<EditJobData>(this.o.store, keys.job(event.jobId));
    if (!data) return;
    await this.settle(data, event);
  }

  /** Handles a job's event with the job's data at hand (the watchdog's way in, when the record may be gone). */
  async settle(data: EditJobData, event: Exclude<QueueEvent, { type: 'active' }>): Promise<void> {
    if (event.type === 'progress') {
      // A gradient job's worker stores its step (and maybe a new preview) before each report past the start.
      const stepped = laneOf(data) !== 'edit' && event.progress > OPTIMIZE_START_PROGRESS;
      const step = stepped ? await getJSON<StepProgress>(this.o.store, keys.progress(data.jobId)).catch(() => null) : null;
      const text = describeProgress(data.spec, event.progress, step);
      await this.deliver(data, { status: 'running', progress: event.progress, text, ...(step?.preview ? { preview: true } : {}) });
    } else if (event.type === 'completed') {
      await this.onCompleted(data);
    } else {
      const cancelled = !!(await this.o.store.get(keys.cancel(event.jobId)));
      const delivered = cancelled
        ? await this.deliver(data, { status: 'cancelled', text: 'Cancelled.' })
        : await this.deliver(data, { status: 'failed', text: `${isTraining(data.spec) ? 'Training' : 'Edit'} failed: ${event.reason}` });
      if (delivered) this.count(data, cancelled ? 'cancelled' : 'failed');
    }
  }

  private async onCompleted(data: EditJobData): Promise<void> {
    const meta = await getJSON<ResultMeta>(this.o.store, keys.resultMeta(data.jobId));
    if (!meta) {
      await this.deliver(data, { status: 'failed', text: 'Edit failed: its result was lost (storage full or expired).' });
      return;
    }
    if (!(await this.deliver(data, { status: 'completed', text: describeResult(data, meta), ...(meta.photo ? { beforeAfter: true } : {}) }))) return;
    this.count(data, 'completed');
    await this.o.store.push(keys.recent(data.platform, data.requesterId), data.jobId, 25, this.o.resultTtlS);
  }

  /** Counts a job's outcome once, in the process that delivered it; latency only for jobs a worker took. */
  count(data: EditJobData, outcome: 'completed' | 'failed' | 'cancelled', ran = true): void {
    this.o.metrics.jobs.inc({ status: outcome });
    if (ran) this.o.metrics.jobLatency.observe({ outcome }, (Date.now() - data.submittedAt) / 1000);
  }
}
