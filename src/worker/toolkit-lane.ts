// A lane of toolkit jobs (one PyTorch process per job: optimize, mapper training), one job at a time, with the
// edit lane's job semantics: cancel flag, a result written before the job completes (a rerun after a crash
// skips finished work), permanent vs transient failures. It adds ❌ that stops the process within a second
// (the flag is polled), a per-job time budget, a capability record the bot checks, and at shutdown it stops
// its run and hands the job back to the queue (no try used). What a job does is the caller's `run`.
import os from 'node:os';
import type { ActiveJob, JobQueue, ProcessorHandle } from '../jobs/queue.ts';
import { OPTIMIZE_START_PROGRESS, PermanentJobError, PostponeJob, type StepProgress } from '../jobs/types.ts';
import { keys } from '../state/keys.ts';
import { advertise, type Advertisement, type Capability } from '../state/capabilities.ts';
import type { WorkerContext } from './context.ts';
import type { TorchProbe } from './optimizer.ts';
import { storeProgress } from './progress.ts';
import { rideOutJob, type Ride } from './ride.ts';
import type { ToolkitRun } from './toolkit-process.ts';

/** A run's step, with the preview image made with it (PNG), if any. */
export type StepListener = (step: StepProgress & { preview?: Buffer }) => void;

/** What a job's `run` gets from its lane. */
export interface LaneTools {
  /** Set once the lane is closing: a job about to start hands itself back (`handBack`). */
  readonly closing: boolean;
  /**
   * Starts a run whose steps show as the job's progress (progress.ts) and follows it until it ends: stopped on ❌
   * (the cancel flag), past `budgetS`, or at shutdown. Its progress records are gone when this returns.
   */
  follow<T>(job: ActiveJob, start: (onStep: StepListener) => ToolkitRun<T>, budgetS: number): Promise<T>;
  /** Throw this to hand a job back to the queue (no try used): another worker, or this one restarted, takes it. */
  handBack(): PostponeJob;
}

export interface ToolkitLaneOptions extends WorkerContext {
  /** Here: this lane's queue. */
  queue: JobQueue;
  capability: Capability;
  torch: Extract<TorchProbe, { ok: true }>;
  /** What its jobs are called in logs and messages: "optimization", "mapper training". */
  what: string;
  /** How often the cancel flag is read while a run is under way (default 250 ms). */
  cancelPollMs?: number;
  run(job: ActiveJob, ride: Ride, lane: LaneTools): Promise<void>;
}

export interface ToolkitLane {
  running(): string[];
  stats(): { jobs: number; failed: number; device: string; torch: string };
  /** Stops taking jobs; a run under way is stopped and its job handed back to the queue. */
  close(): Promise<void>;
}

/** A job handed back at shutdown rejoins the queue after this. */
const HAND_BACK_MS = 100;

export function startToolkitLane(o: ToolkitLaneOptions): ToolkitLane {
  const runs = new Map<string, ToolkitRun<unknown>>();
  let closing = false;
  let done = 0;
  let failed = 0;
  const ad: Advertisement = advertise(o.store, o.capability, { worker: `${os.hostname()}:${process.pid}`, device: o.device, torch: o.torch.torch });
  // Seen only without Redis (the in-process queue dies with the process); with Redis the job reruns.
  const handBack = () => new PostponeJob(`the bot restarted before this ${o.what} finished; please run it again.`, HAND_BACK_MS);

  async function supervise<T>(jobId: string, run: ToolkitRun<T>, budgetS: number): Promise<T> {
    runs.set(jobId, run);
    if (closing) run.stop('shutdown');
    const budget = setTimeout(() => run.stop('budget'), budgetS * 1000);
    let polling = true;
    const poll = (async () => {
      while (polling) {
        await new Promise((r) => setTimeout(r, o.cancelPollMs ?? 250));
        if (!polling) break;
        try {
          if (await o.store.get(keys.cancel(jobId))) run.stop('cancelled');
        } catch {
          // Redis away: try again at the next tick.
        }
      }
    })();
    try {
      return await run.outcome;
    } finally {
      polling = false;
      clearTimeout(budget);
      runs.delete(jobId);
      await poll;
    }
  }

  async function follow<T>(job: ActiveJob, start: (onStep: StepListener) => ToolkitRun<T>, budgetS: number): Promise<T> {
    await job.progress(OPTIMIZE_START_PROGRESS);
    const progress = storeProgress(o, job);
    try {
      return await supervise(job.id, start(({ preview, ...step }) => progress.step(step, preview)), budgetS);
    } finally {
      await progress.settled();
      await o.store.del(keys.preview(job.id), keys.progress(job.id)).catch(() => {}); // best effort: they expire anyway
    }
  }

  const tools: LaneTools = {
    get closing() {
      return closing;
    },
    follow,
    handBack,
  };

  const handle: ProcessorHandle = o.queue.process(async (job) => {
    try {
      await rideOutJob(o, job, (j, ride) => o.run(j, ride, tools));
      done += 1;
    } catch (err) {
      if (err instanceof PostponeJob) throw err;
      const code = err instanceof PermanentJobError ? err.code : ((err as { code?: string }).code ?? 'internal');
      o.metrics.failures.inc({ cause: code });
      if (err instanceof PermanentJobError) failed += 1;
      o.log.warn({ jobId: job.id, attempt: job.attempt, code, err: (err as Error).message }, `${o.what} job failed`);
      throw err;
    }
  }, 1);
  o.log.info({ device: o.device, torch: o.torch.torch }, `taking ${o.what} jobs (PyTorch found)`);

  return {
    running: () => [...runs.keys()],
    stats: () => ({ jobs: done, failed, device: o.device, torch: o.torch.torch }),
    async close() {
      closing = true;
      await ad.stop();
      for (const run of runs.values()) run.stop('shutdown');
      await handle.close();
    },
  };
}
