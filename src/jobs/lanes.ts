// Two lanes over one JobQueue contract: fast edits (onnxruntime) and gradient jobs (latent optimization on
// PyTorch), each its own queue (with Redis, its own BullMQ queue name). A worker takes the gradient lane only
// when it can run it, so no other worker ever picks up, bounces or fails a gradient job; both lanes keep every
// queue semantic (idempotent ids, priorities, retries, stalled-job recovery, delayed postponement), and the
// bot sees them as one queue (caps, positions, cancel count jobs of both).
import type { InFlightJob, JobHandler, JobQueue, ProcessorHandle } from './queue.ts';
import type { EditJobData, QueueEvent } from './types.ts';

export type Lane = 'edit' | 'gradient';

export const laneOf = (data: EditJobData): Lane => (data.spec.method === 'optimize' ? 'gradient' : 'edit');

export class LaneQueue implements JobQueue {
  readonly durable: boolean;

  constructor(
    readonly edits: JobQueue,
    readonly gradients: JobQueue,
  ) {
    this.durable = edits.durable && gradients.durable;
  }

  private lane(lane: Lane): JobQueue {
    return lane === 'gradient' ? this.gradients : this.edits;
  }

  add(data: EditJobData): Promise<void> {
    return this.lane(laneOf(data)).add(data);
  }

  async inFlight(): Promise<InFlightJob[]> {
    const [a, b] = await Promise.all([this.edits.inFlight(), this.gradients.inFlight()]);
    return [...a, ...b];
  }

  async running(): Promise<InFlightJob[]> {
    const [a, b] = await Promise.all([this.edits.running(), this.gradients.running()]);
    return [...a, ...b];
  }

  /** Where a job is in whichever lane knows it (the watchdog asks by id: a job on the gradient lane is not lost). */
  async status(jobId: string): ReturnType<JobQueue['status']> {
    const [edit, gradient] = await Promise.all([this.edits.status(jobId), this.gradients.status(jobId)]);
    return edit.state !== 'missing' ? edit : gradient;
  }

  async removeWaiting(jobId: string): Promise<boolean> {
    return (await this.edits.removeWaiting(jobId)) || (await this.gradients.removeWaiting(jobId));
  }

  onEvent(listener: (event: QueueEvent) => void): () => void {
    const offs = [this.edits.onEvent(listener), this.gradients.onEvent(listener)];
    return () => offs.forEach((off) => off());
  }

  /** The edit lane, unless `lane` says otherwise. */
  process(handler: JobHandler, concurrency: number, lane: Lane = 'edit'): ProcessorHandle {
    return this.lane(lane).process(handler, concurrency);
  }

  async ready(): Promise<void> {
    await Promise.all([this.edits.ready(), this.gradients.ready()]);
  }

  async close(options?: { timeoutMs?: number }): Promise<void> {
    await Promise.all([this.edits.close(options), this.gradients.close(options)]);
  }

  disconnect(): void {
    this.edits.disconnect();
    this.gradients.disconnect();
  }
}

/** Whether `queue` has a gradient lane a worker can take jobs from. */
export function gradientLane(queue: JobQueue): JobQueue | null {
  return queue instanceof LaneQueue ? queue.gradients : null;
}
