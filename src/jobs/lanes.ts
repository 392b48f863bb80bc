// Three lanes over one JobQueue contract: fast edits (onnxruntime), latent optimizations (minutes on PyTorch)
// and mapper trainings (an hour or more on PyTorch), each its own queue (with Redis, its own BullMQ queue name).
// A worker takes a gradient lane only when it can run it, so no other worker ever picks up, bounces or fails
// such a job; an optimization never waits behind a training. Every lane keeps every queue semantic (idempotent
// ids, priorities, retries, stalled-job recovery, delayed postponement), and the bot sees them as one queue
// (caps, positions, cancel count jobs of all).
import type { InFlightJob, JobHandler, JobQueue, ProcessorHandle } from './queue.ts';
import type { EditJobData, QueueEvent } from './types.ts';

export const LANES = ['edit', 'gradient', 'training'] as const;
export type Lane = (typeof LANES)[number];

export function laneOf(data: EditJobData): Lane {
  const method = data.spec.method;
  return method === 'optimize' ? 'gradient' : method === 'train-mapper' ? 'training' : 'edit';
}

export class LaneQueue implements JobQueue {
  readonly durable: boolean;
  readonly lanes: Record<Lane, JobQueue>;
  private readonly all: JobQueue[];

  /** `make` builds each lane's queue (a BullQueue with the lane's name, or an in-process queue). */
  constructor(make: (lane: Lane) => JobQueue) {
    this.lanes = Object.fromEntries(LANES.map((l) => [l, make(l)])) as Record<Lane, JobQueue>;
    this.all = Object.values(this.lanes);
    this.durable = this.all.every((q) => q.durable);
  }

  private lane(lane: Lane): JobQueue {
    return this.lanes[lane];
  }

  add(data: EditJobData): Promise<void> {
    return this.lane(laneOf(data)).add(data);
  }

  async inFlight(): Promise<InFlightJob[]> {
    return (await Promise.all(this.all.map((q) => q.inFlight()))).flat();
  }

  async running(): Promise<InFlightJob[]> {
    return (await Promise.all(this.all.map((q) => q.running()))).flat();
  }

  /** Where a job is in whichever lane knows it (the watchdog asks by id: a job on a gradient lane is not lost). */
  async status(jobId: string): ReturnType<JobQueue['status']> {
    const found = await Promise.all(this.all.map((q) => q.status(jobId)));
    return found.find((s) => s.state !== 'missing') ?? found[0];
  }

  async removeWaiting(jobId: string): Promise<boolean> {
    for (const q of this.all) if (await q.removeWaiting(jobId)) return true;
    return false;
  }

  onEvent(listener: (event: QueueEvent) => void): () => void {
    const offs = this.all.map((q) => q.onEvent(listener));
    return () => offs.forEach((off) => off());
  }

  /** The edit lane, unless `lane` says otherwise. */
  process(handler: JobHandler, concurrency: number, lane: Lane = 'edit'): ProcessorHandle {
    return this.lane(lane).process(handler, concurrency);
  }

  async ready(): Promise<void> {
    await Promise.all(this.all.map((q) => q.ready()));
  }

  async close(options?: { timeoutMs?: number }): Promise<void> {
    await Promise.all(this.all.map((q) => q.close(options)));
  }

  disconnect(): void {
    this.all.forEach((q) => q.disconnect());
  }
}

/** `queue`'s lane a worker can take jobs of that kind from (none on a queue without lanes). */
export function laneQueue(queue: JobQueue, lane: Exclude<Lane, 'edit'>): JobQueue | null {
  return queue instanceof LaneQueue ? queue.lanes[lane] : null;
}
