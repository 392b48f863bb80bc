// The bot's watch over the jobs it awaits, so that no user waits on silence when Redis loses data or an event.
// It keeps, in memory, each job this process queued and has not answered yet (edits, nudges, and photo jobs
// alike: whatever goes through Submissions), and every sweep (WATCHDOG_SWEEP_MS, 15 s) checks them against
// the queue. A job is judged only when two sweeps in a row find it in the same state, so events under way win:
// - finished in the queue but never answered (its event was missed while Redis was away): answered now;
// - unknown to the queue, with its result stored: the result is delivered;
// - unknown to the queue and its job record gone too (Redis restarted without its data): the request, which
//   the bot holds, is queued again under the same id, once, and the user is told so;
// - otherwise (removed by hand, evicted, or lost a second time): the user is told to run it again.
// Within a minute (two sweeps) every affected user hears, exactly once (the final reply's claim).
// After a restart of the bot, its first sweep adopts the jobs in the queue for the platforms it serves.
// While Redis is away the sweeps pause; when an outage reaches REDIS_OUTAGE_MS, users whose jobs wait are told
// once that their edit is delayed until Redis is back (a progress-line update, not a final reply).
// It also rolls back submissions that Redis interrupted halfway, once it is back: nothing stays half-queued.
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { JobQueue } from '../jobs/queue.ts';
import type { EditJobData } from '../jobs/types.ts';
import { isRedisDown, setJSON, type Store } from '../state/store.ts';
import type { RedisHealth } from '../state/redis-health.ts';
import { keys } from '../state/keys.ts';
import { describeSpec } from './captions.ts';
import type { JobEvents } from './job-events.ts';

export const LOST_JOB = 'Edit failed: the job queue lost this job (Redis lost its data, or the job was removed); please run it again.';
export const requeuedText = (data: EditJobData) =>
  `Queued ${describeSpec(data.spec)} again: the job queue lost it (Redis restarted without its data).`;
export const delayedText = (downS: number) =>
  `⏳ Delayed: the job queue has been unreachable for ${downS} s. Your edit is kept and will run once it is back.`;

export interface WatchdogOptions {
  queue: JobQueue;
  store: Store;
  events: JobEvents;
  /** The bot's view of its Redis connection (null in embedded mode). */
  health: RedisHealth | null;
  metrics: Metrics;
  log: Logger;
  resultTtlS: number;
  /** WATCHDOG_SWEEP_MS */
  sweepMs: number;
  /** REDIS_OUTAGE_MS */
  outageMs: number;
}

interface Awaited {
  data: EditJobData;
  /** The state the previous sweep found, when it was not "pending". */
  seen?: string;
  /** Queued again once already after Redis lost it. */
  requeued: boolean;
  /** Told of the current outage. */
  toldDelayed: boolean;
}

export class Watchdog {
  private readonly awaited = new Map<string, Awaited>();
  /** Ids whose submission failed halfway (the user was told to try again): undone once Redis is back. */
  private readonly rollbacks = new Set<string>();
  private readonly timer: NodeJS.Timeout;
  private sweeping: Promise<void> | null = null;
  private adopted = false;
  /** Fires when an outage reaches REDIS_OUTAGE_MS. */
  private outageTimer: NodeJS.Timeout | null = null;

  constructor(private readonly o: WatchdogOptions) {
    o.events.onFinal((jobId) => this.forget(jobId));
    this.timer = setInterval(() => void this.sweep(), o.sweepMs);
    this.timer.unref();
    o.health?.onChange((up) => {
      if (this.outageTimer) clearTimeout(this.outageTimer);
      this.outageTimer = up ? null : setTimeout(() => void this.outage(Math.max(o.outageMs, o.health!.downForMs())).catch(() => {}), o.outageMs);
      this.outageTimer?.unref();
    });
  }

  /** A job this process queued and will answer. */
  watch(data: EditJobData): void {
    this.awaited.set(data.jobId, { data, requeued: false, toldDelayed: false });
    this.o.metrics.awaited.set(this.awaited.size);
  }

  /** A submission that Redis interrupted after its job record was written: undo it once Redis is back. */
  rollBack(jobId: string): void {
    this.rollbacks.add(jobId);
  }

  forget(jobId: string): void {
    if (this.awaited.delete(jobId)) this.o.metrics.awaited.set(this.awaited.size);
  }

  close(): void {
    clearInterval(this.timer);
    if (this.outageTimer) clearTimeout(this.outageTimer);
  }

  /** One pass (the timer calls it; tests may too). Never throws. */
  sweep(): Promise<void> {
    this.sweeping ??= this.sweepNow()
      .catch((err) => {
        if (!isRedisDown(err)) this.o.log.warn({ err: (err as Error).message }, 'watchdog sweep failed');
      })
      .finally(() => (this.sweeping = null));
    return this.sweeping;
  }

  private async sweepNow(): Promise<void> {
    const { health } = this.o;
    if (health && !health.up) return this.outage(health.downForMs());
    for (const id of [...this.rollbacks]) await this.undo(id);
    if (!this.adopted) await this.adopt();
    for (const entry of [...this.awaited.values()]) {
      entry.toldDelayed = false;
      await this.check(entry);
    }
  }

  private async outage(downMs: number): Promise<void> {
    if (downMs < this.o.outageMs) return;
    for (const entry of this.awaited.values()) {
      if (entry.toldDelayed) continue;
      entry.toldDelayed = true;
      // Not a final reply (no store needed): the message still becomes the result once Redis is back.
      await this.o.events.deliver(entry.data, { status: 'queued', text: delayedText(Math.round(downMs / 1000)) });
    }
  }

  /** Jobs queued before this process started (by its previous run) whose platform it serves. */
  private async adopt(): Promise<void> {
    for (const job of await this.o.queue.inFlight()) {
      if (!this.awaited.has(job.id) && this.o.events.serves(job.data.platform)) this.watch(job.data);
    }
    this.adopted = true;
  }

  private async undo(jobId: string): Promise<void> {
    const { store, queue, resultTtlS } = this.o;
    // The cancel flag stops a copy that reached a worker; without the record no event of it reaches a user.
    await store.set(keys.cancel(jobId), '1', resultTtlS);
    await queue.removeWaiting(jobId);
    await store.del(keys.job(jobId));
    this.rollbacks.delete(jobId);
    this.o.log.info({ jobId }, 'half-queued submission rolled back');
  }

  private async check(entry: Awaited): Promise<void> {
    const { store, queue } = this.o;
    const id = entry.data.jobId;
    if (await store.get(keys.claim(id, 'final'))) return this.forget(id); // answered (maybe by another process)
    const status = await queue.status(id);
    if (status.state === 'pending') {
      entry.seen = undefined;
      return;
    }
    if (entry.seen !== status.state) {
      entry.seen = status.state; // judged on the next sweep, if still so
      return;
    }
    if (status.state === 'completed' || (status.state === 'missing' && (await store.get(keys.resultMeta(id))))) {
      return this.answer(entry, { type: 'completed', jobId: id });
    }
    if (status.state === 'failed') return this.answer(entry, { type: 'failed', jobId: id, reason: status.reason ?? 'unknown error' });
    if (!entry.requeued && !(await store.get(keys.job(id)))) return this.requeue(entry);
    return this.tell(entry);
  }

  /** The job finished but its event never reached a reply: answer it now (the claim keeps it to one reply). */
  private async answer(entry: Awaited, event: { type: 'completed'; jobId: string } | { type: 'failed'; jobId: string; reason: string }) {
    this.o.metrics.lostJobs.inc({ action: 'recovered' });
    this.o.log.warn({ jobId: entry.data.jobId, outcome: event.type }, 'watchdog: job finished but unanswered; answering it now');
    await this.o.events.settle(entry.data, event);
    this.forget(entry.data.jobId);
  }

  private async requeue(entry: Awaited) {
    const { data } = entry;
    entry.requeued = true;
    entry.seen = undefined;
    await setJSON(this.o.store, keys.job(data.jobId), data, this.o.resultTtlS);
    await this.o.queue.add(data);
    this.o.metrics.lostJobs.inc({ action: 'requeued' });
    this.o.log.warn({ jobId: data.jobId }, 'watchdog: job lost with Redis data; queued again');
    await this.o.events.deliver(data, { status: 'queued', text: requeuedText(data) });
  }

  private async tell(entry: Awaited) {
    const { data } = entry;
    this.o.metrics.lostJobs.inc({ action: 'told' });
    this.o.log.warn({ jobId: data.jobId, requeued: entry.requeued }, 'watchdog: job lost; telling its user');
    if (await this.o.events.deliver(data, { status: 'failed', text: LOST_JOB })) this.o.events.count(data, 'failed', false);
    this.forget(data.jobId);
  }
}
