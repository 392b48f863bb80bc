// The optimize lane of a worker that has PyTorch (a toolkit lane, toolkit-lane.ts): one PyTorch process per
// job (optimizer.ts), from a seed or a stored W+, with progress carrying a small preview image.
import type { ActiveJob } from '../jobs/queue.ts';
import { CANCELLED_MESSAGE, PHOTO_NOT_OPTIMIZED, PermanentJobError, type OptimizeInfo, type ResultMeta } from '../jobs/types.ts';
import { getJSON, setJSON } from '../state/store.ts';
import { keys } from '../state/keys.ts';
import { runningCapsCheck } from './running-caps.ts';
import type { WorkerContext } from './context.ts';
import { startOptimization, type TorchProbe } from './optimizer.ts';
import { ridingStore, type Ride } from './ride.ts';
import { startToolkitLane, type LaneTools, type ToolkitLane } from './toolkit-lane.ts';

export interface OptimizeLaneOptions extends WorkerContext {
  /** Longest a job may run (OPTIMIZE_BUDGET_S); past it the run is stopped and the user told. */
  budgetS: number;
  torch: Extract<TorchProbe, { ok: true }>;
  checkRunningCaps: ReturnType<typeof runningCapsCheck>;
  /** How often the cancel flag is read while a run is under way (default 250 ms). */
  cancelPollMs?: number;
}

export type OptimizeLane = Omit<ToolkitLane, 'stats'> & { stats(): ReturnType<ToolkitLane['stats']> & { lastStepsPerS: number | null } };

const f32 = (buf: Buffer) => new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** `o.queue`: the gradient lane's queue. */
export function startOptimizeLane(o: OptimizeLaneOptions): OptimizeLane {
  let lastStepsPerS: number | null = null;

  async function handle(job: ActiveJob, ride: Ride, lane: LaneTools) {
    const { id, data } = job;
    // Every store call rides out a Redis outage (up to REDIS_OUTAGE_MS), as on the edit lane (ride.ts).
    const store = ridingStore(o.store, ride);
    if (data.spec.method !== 'optimize') throw new PermanentJobError('wrong_lane', 'Only optimize jobs belong on the gradient lane.');
    const spec = data.spec;
    if (await store.get(keys.cancel(id))) throw new PermanentJobError('cancelled', CANCELLED_MESSAGE);
    if (await store.get(keys.resultMeta(id))) return; // finished before a crash: nothing to redo
    if (lane.closing) throw lane.handBack();
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

    const request = { packDir: pack.dir, prompt: spec.prompt, seed, latent, steps: spec.steps, l2Lambda: spec.l2Lambda, idLambda: spec.idLambda, device: o.device };
    const outcome = await lane.follow(job, (onStep) => startOptimization(request, { onStep }), o.budgetS);

    if (outcome.kind === 'stopped') {
      if (outcome.reason === 'cancelled') throw new PermanentJobError('cancelled', CANCELLED_MESSAGE);
      if (outcome.reason === 'shutdown') throw lane.handBack();
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
    o.metrics.gradientRunSeconds.observe({ method: 'optimize' }, s.seconds);
    const ttl = o.resultTtlS;
    await job.progress(95);
    await store.set(keys.resultPng(id), outcome.png, ttl);
    await store.set(keys.resultWplus(id), bytes(outcome.wplus), ttl);
    await setJSON(store, keys.resultMeta(id), meta, ttl); // written last: its presence means "result complete"
  }

  const lane = startToolkitLane({ ...o, capability: 'optimize', what: 'optimization', run: handle });
  return { ...lane, stats: () => ({ ...lane.stats(), lastStepsPerS }) };
}
