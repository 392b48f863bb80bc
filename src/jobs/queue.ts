// The job queue contract, met by the BullMQ queue (with Redis) and the in-process one (embedded default).
import type { EditJobData, QueueEvent } from './types.ts';

export interface InFlightJob {
  id: string;
  state: 'waiting' | 'active';
  data: EditJobData;
  /** 1 = next to run; waiting jobs only. */
  position?: number;
  /** When this run of it started (ms since the epoch); running jobs only. */
  startedAt?: number;
}

export interface ActiveJob {
  id: string;
  data: EditJobData;
  /** 1 on the first try. */
  attempt: number;
  /** When this run started (ms since the epoch): orders jobs that start at once. */
  startedAt: number;
  progress(percent: number): Promise<void>;
}

/** Throws PermanentJobError (no retry, message shown), PostponeJob (back to the queue, no try used) or anything else (retried with backoff). */
export type JobHandler = (job: ActiveJob) => Promise<void>;

export interface ProcessorHandle {
  /** Stops taking jobs and waits for running ones to finish. */
  close(): Promise<void>;
}

export interface QueueTuning {
  /** Tries per job for transient faults (default 3). */
  attempts: number;
  /** First retry delay; doubles each time (default 1000 ms). */
  backoffMs: number;
  /** BullMQ lock: a worker silent this long is presumed dead and its job reruns elsewhere. */
  lockDurationMs: number;
  stalledIntervalMs: number;
}

export const defaultTuning: QueueTuning = { attempts: 3, backoffMs: 1000, lockDurationMs: 30_000, stalledIntervalMs: 30_000 };

export interface JobQueue {
  /** Whether waiting jobs outlive this process (Redis) or are lost with it (in-process queue). */
  readonly durable: boolean;
  /** Idempotent: adding an id that is already queued or running is a no-op. Runs in `data.priority` order. */
  add(data: EditJobData): Promise<void>;
  /** Waiting jobs in run order (with positions) and running jobs. */
  inFlight(): Promise<InFlightJob[]>;
  /** Running jobs only (as many as the workers' concurrency: cheap enough for every job start). */
  running(): Promise<InFlightJob[]>;
  /**
   * Where a job is now: still to run (waiting, delayed or active), finished (`reason` says why it failed), or
   * unknown to the queue (never added, removed, or lost with Redis's data). Finished jobs are kept a while
   * (BullMQ: an hour when completed, a day when failed).
   */
  status(jobId: string): Promise<{ state: 'pending' | 'completed' | 'failed' | 'missing'; reason?: string }>;
  /** Removes a waiting job (true) or returns false (running or unknown; running jobs see the cancel flag). */
  removeWaiting(jobId: string): Promise<boolean>;
  onEvent(listener: (event: QueueEvent) => void): () => void;
  process(handler: JobHandler, concurrency: number): ProcessorHandle;
  /** Resolves once the queue can take jobs. */
  ready(): Promise<void>;
  /**
   * Stops taking jobs, lets running ones finish, closes the connections. With `timeoutMs`, a close still
   * unfinished by then (BullMQ waits for an unreachable Redis forever) is forced with disconnect().
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
  /**
   * Drops the connections at once, without waiting for running jobs or for Redis: the end of a shutdown
   * past its grace period. Running jobs are abandoned (with Redis their locks lapse and another worker
   * reruns them). A close() under way may never resolve after this; the process is expected to exit.
   */
  disconnect(): void;
}

/** Whether `promise` settles (either way) within `ms`. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
