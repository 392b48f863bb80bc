// The gradient lane of a worker that has PyTorch: takes optimize jobs one at a time (one PyTorch process per
// job, optimizer.ts), with the edit lane's job semantics: cancel flag, a result written before the job
// completes (a rerun after a crash skips finished work), running caps, permanent vs transient failures. It adds
// progress with a small preview image, ❌ that stops the process within a second (the flag is polled), a per-job
// time budget, and at shutdown it stops its run and hands the job back to the queue (no try used).
import os from 'node:os';
import type { ActiveJob, JobQueue, ProcessorHandle } from '../jobs/queue.ts';
import { CANCELLED_MESSAGE, OPTIMIZE_START_PROGRESS, PHOTO_NOT_OPTIMIZED, PermanentJobError, PostponeJob, type OptimizeInfo, type ResultMeta } from '../jobs/types.ts';
import { getJSON, setJSON } from '../state/store.ts';
import { keys } from '../state/keys.ts';
import { advertise, type Advertisement } from '../state/capabilities.ts';
import type { WorkerContext } from './context.ts';
import { startOptimization, type OptimizeRun, type TorchProbe } from './optimizer.ts';
import { rideOutJob, ridingStore, type Ride } from './ride.ts';

export interface OptimizeLaneOptions extends WorkerContext {
  /** Here: the gradient lane's queue. */
  queue: JobQueue;
  /** Longest a job may run (OPTIMIZE_BUDGET_S); past it the run is stopped and the user told. */
  budgetS: number;
  torch: Extract<TorchProbe, { ok: true }>;
  checkRunningCaps(job: ActiveJob, ride?: Ride): Promise<void>;
  /** How often the cancel flag is read while a run is under way (default 250 ms). */
  cancelPollMs?: number;
}

export interface OptimizeLane {
  running(): string[];
  stats(): { jobs: number; failed: number; device: string; torch: string; lastStepsPerS: number | null };
  /** Stops taking jobs; a run under way is stopped and its job handed back to the queue. */
  close(): Promise<void>;
}

/** A job handed back at shutdown rejoins the queue after this (another worker, or this one restarted, takes it). */
const HAND_BACK_MS = 100;
/** Seen only without Redis (the in-process queue dies with the process); with Redis the job reruns. */
const SHUT_DOWN = 'the bot restarted before this optimization finished; please run it again.';

const f32 = (buf: Buffer) => new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

export function startOptimizeLane(o: OptimizeLaneOptions): OptimizeLane {
  const runs = new Map<string, OptimizeRun>();
  let closing = false;
  let done = 0;
  let failed = 0;
  let lastStepsPerS: number | null = null;
  const workerName = `${os.hostname()}:${process.pid}`;
  const ad: Advertisement = advertise(o.store, 'optimize', { worker: workerName, device: o.device, torch: o.torch.torch });

  async function handle(job: ActiveJob, ride: Ride) {
    const { id, data } = job;
    // Every store call rides out a Redis outage (up to REDIS_OUTAGE_MS), as on the edit lane (ride.ts).
    const store = ridingStore(o.store, ride);
    if (data.spec.method !== 'optimize') throw new PermanentJobError('wrong_lane', 'Only optimize jobs belong on the gradient lane.');
    const spec = data.spec;
    if (await store.get(keys.cancel(id))) throw new PermanentJobError('cancelled', CANCELLED_MESSAGE);
    if (await store.get(keys.resultMeta(id))) return; // finished before a crash: nothing to redo
    if (closing) throw new PostponeJob(SHUT_DOWN, HAND_BACK_MS);
    await o.checkRunningCaps(job, ride);
    const pack = o.packs.get(data.pack);
    if (!pack) throw new PermanentJobError('unknown_pack', `Model pack "${data.pack}" is not installed on this worker.`);
    const pickedAt = Date.now();

    let seed: number | undefined;
    let latent: { data: Float32Array; numWs: number; wDim: number } | undefined;
    if (data.source.kind === 'seed') seed = data.source.seed;
    else if (data.source.kind === 'photo') {
      throw new PermanentJobError('source_photo', PHOTO_NOT_OPTIMIZED);
    } else {
      const from = data.source.jobId;
      const [meta, wplus, delta] = await Promise.all([
        getJSON<ResultMeta>(store, keys.resultMeta(from)),
        store.get(keys.resultWplus(from)),
        store.get(keys.resultDelta(from)),
      ]);
      if (!meta || !wplus) throw new PermanentJobError('source_expired', `The result ${from} you started from has expired; start a new edit.`);
      if (delta) {
        throw new PermanentJobError('source_stylespace', `The result ${from} is a global (StyleSpace) edit, which W+ optimization cannot start from; start from a seed, a mapper or an optimize result.`);
      }
      latent = { data: f32(wplus), numWs: pack.numWs, wDim: pack.wDim };
      seed = meta.seed;
    }

    await job.progress(OPTIMIZE_START_PROGRESS);
    let chain: Promise<void> = Promise.resolve();
    const run = startOptimization(
      { packDir: pack.dir, prompt: spec.prompt, seed, latent, steps: spec.steps, l2Lambda: spec.l2Lambda, idLambda: spec.idLambda, device: o.device },
      {
        onStep: (step) => {
          // The preview first, then the progress that says it is there (job-events.ts).
          const percent = Math.min(90, OPTIMIZE_START_PROGRESS + 1 + Math.floor((84 * step.step) / step.steps));
          chain = chain
            .then(async () => {
              if (step.preview) await o.store.set(keys.preview(id), step.preview, o.resultTtlS); // best effort: not ridden out
              await job.progress(percent);
            })
            .catch((err) => o.log.warn({ jobId: id, err: (err as Error).message }, 'optimize progress not recorded'));
        },
      },
    );
    runs.set(id, run);
    if (closing) run.stop('shutdown');
    const budget = setTimeout(() => run.stop('budget'), o.budgetS * 1000);
    let polling = true;
    const poll = (async () => {
      while (polling) {
        await new Promise((r) => setTimeout(r, o.cancelPollMs ?? 250));
        if (!polling) break;
        try {
          if (await o.store.get(keys.cancel(id))) run.stop('cancelled');
        } catch {
          // Redis away: try again at the next tick.
        }
      }
    })();
    let outcome;
    try {
      outcome = await run.outcome;
    } finally {
      polling = false;
      clearTimeout(budget);
      runs.delete(id);
      await poll;
      await chain;
    }

    if (outcome.kind === 'stopped') {
      await store.del(keys.preview(id)).catch(() => {});
      if (outcome.reason === 'cancelled') throw new PermanentJobError('cancelled', CANCELLED_MESSAGE);
      if (outcome.reason === 'shutdown') throw new PostponeJob(SHUT_DOWN, HAND_BACK_MS);
      throw new PermanentJobError(
        'time_budget',
        `The optimization ran past this worker's ${o.budgetS} s budget (stopped at step ${outcome.step} of ${spec.steps}); try fewer steps.`,
      );
    }
    if (outcome.kind === 'refused') throw new PermanentJobError('optimize_refused', outcome.message);
    if (outcome.kind === 'crashed') throw Object.assign(new Error(outcome.message), { code: 'optimize_crashed' });
    if (await store.get(keys.cancel(id))) throw new PermanentJobError('cancelled', CANCELLED_MESSAGE);

    const s = outcome.summary;
    lastStepsPerS = s.stepsPerS;
    const info: OptimizeInfo = {
      method: 'optimize',
      steps: s.steps,
      l2Lambda: spec.l2Lambda,
      idLambda: spec.idLambda,
      loss: s.loss,
      clip: s.clip,
      l2: s.l2,
      id: s.id,
      seconds: s.seconds,
      stepsPerS: s.stepsPerS,
      device: s.device,
    };
    const meta: ResultMeta = {
      jobId: id,
      pack: data.pack,
      untrained: pack.untrained,
      resolution: s.resolution || pack.resolution,
      info,
      source: data.source,
      seed,
      styleChannels: pack.styleChannels,
      timings: { queueMs: pickedAt - data.submittedAt, engineMs: Math.round(s.seconds * 1000), encodeMs: 0, batchSize: 1 },
      completedAt: Date.now(),
    };
    o.metrics.engineSeconds.observe({ stage: 'optimize' }, s.seconds);
    const ttl = o.resultTtlS;
    await job.progress(95);
    await store.set(keys.resultPng(id), outcome.png, ttl);
    await store.set(keys.resultWplus(id), bytes(outcome.wplus), ttl);
    await setJSON(store, keys.resultMeta(id), meta, ttl); // written last: its presence means "result complete"
    await store.del(keys.preview(id)).catch(() => {});
  }

  const handle_: ProcessorHandle = o.queue.process(async (job) => {
    try {
      await rideOutJob(o, job, handle);
      done += 1;
    } catch (err) {
      if (err instanceof PostponeJob) throw err;
      const code = err instanceof PermanentJobError ? err.code : ((err as { code?: string }).code ?? 'internal');
      o.metrics.failures.inc({ cause: code });
      if (err instanceof PermanentJobError) failed += 1;
      o.log.warn({ jobId: job.id, attempt: job.attempt, code, err: (err as Error).message }, 'optimize job failed');
      throw err;
    }
  }, 1);
  o.log.info({ device: o.device, torch: o.torch.torch, budgetS: o.budgetS }, 'taking optimize jobs (PyTorch found)');

  return {
    running: () => [...runs.keys()],
    stats: () => ({ jobs: done, failed, device: o.device, torch: o.torch.torch, lastStepsPerS }),
    async close() {
      closing = true;
      await ad.stop();
      for (const run of runs.values()) run.stop('shutdown');
      await handle_.close();
    },
  };
}
