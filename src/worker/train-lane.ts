// The mapper-training lane of a worker that has PyTorch (a toolkit lane, toolkit-lane.ts): one server's
// `/styleclip-admin train-mapper` at a time, the toolkit writing into that server's mapper folder beside the
// pack (mapper-trainer.ts). A rerun of a job that started before (its worker died, or shut down and handed it
// back) resumes from the checkpoint; a new job starts over. ❌ or the time budget end it and drop the checkpoint.
import fs from 'node:fs/promises';
import type { ActiveJob } from '../jobs/queue.ts';
import { CANCELLED_MESSAGE, PermanentJobError, type ResultMeta, type TrainInfo } from '../jobs/types.ts';
import { setJSON } from '../state/store.ts';
import { keys } from '../state/keys.ts';
import type { WorkerContext } from './context.ts';
import { startMapperTraining } from './mapper-trainer.ts';
import type { TorchProbe } from './optimizer.ts';
import { ridingStore, type Ride } from './ride.ts';
import { startToolkitLane, type LaneTools, type ToolkitLane } from './toolkit-lane.ts';

export interface TrainLaneOptions extends WorkerContext {
  /** Longest a training may run (TRAIN_BUDGET_S); past it the run is stopped and the admin told. */
  budgetS: number;
  torch: Extract<TorchProbe, { ok: true }>;
  cancelPollMs?: number;
}

/** Each half of the preview (the sample face before → after) at most this many px a side. */
const PREVIEW_SIZE = 128;

/** `o.queue`: the training lane's queue. */
export function startTrainLane(o: TrainLaneOptions): ToolkitLane {
  async function handle(job: ActiveJob, ride: Ride, lane: LaneTools) {
    const { id, data } = job;
    const store = ridingStore(o.store, ride);
    if (data.spec.method !== 'train-mapper') throw new PermanentJobError('wrong_lane', 'Only mapper trainings belong on the training lane.');
    const spec = data.spec;
    if (await store.get(keys.cancel(id))) throw new PermanentJobError('cancelled', CANCELLED_MESSAGE);
    if (await store.get(keys.resultMeta(id))) return; // finished before a crash: nothing to redo
    if (lane.closing) throw lane.handBack();
    const pack = o.packs.get(data.pack);
    if (!pack) throw new PermanentJobError('unknown_pack', `Model pack "${data.pack}" is not installed on this worker.`);
    const outDir = o.packs.overlayDir(pack, data.scope);
    if (!outDir) throw new PermanentJobError('no_data_dir', 'This worker has no data folder (STYLECLIP_DATA_DIR) to keep server mappers in; ask the operator.');
    const pickedAt = Date.now();

    // Set before the first step: from then on a rerun of this job continues from its checkpoint.
    const resume = !!(await store.get(keys.trainStarted(id)));
    await store.set(keys.trainStarted(id), '1', o.resultTtlS);
    const request = {
      packDir: pack.dir,
      prompt: spec.prompt,
      steps: spec.steps,
      levels: spec.levels,
      idLambda: spec.idLambda,
      outDir,
      resume,
      device: o.device,
      seed: data.source.kind === 'seed' ? data.source.seed : 0,
      previewSize: PREVIEW_SIZE,
    };
    const outcome = await lane.follow(job, (onStep) => startMapperTraining(request, { onStep }), o.budgetS);

    if (outcome.kind === 'stopped') {
      if (outcome.reason === 'shutdown') throw lane.handBack(); // the checkpoint stays for the rerun
      if (outcome.checkpoint) await fs.rm(outcome.checkpoint, { force: true });
      await store.del(keys.trainStarted(id));
      if (outcome.reason === 'cancelled') throw new PermanentJobError('cancelled', CANCELLED_MESSAGE);
      throw new PermanentJobError(
        'time_budget',
        `The training ran past this worker's ${o.budgetS} s budget (stopped at step ${outcome.step} of ${spec.steps}); no mapper was saved. Try fewer steps.`,
      );
    }
    if (outcome.kind === 'refused') throw new PermanentJobError('train_refused', outcome.message);
    if (outcome.kind === 'crashed') throw Object.assign(new Error(outcome.message), { code: 'train_crashed' });

    const info: TrainInfo = {
      method: 'train-mapper',
      name: outcome.name,
      slug: outcome.slug,
      steps: outcome.steps,
      resumedAt: outcome.resumedAt,
      idLambda: spec.idLambda,
      loss: outcome.loss,
      clip: outcome.clip,
      seconds: outcome.seconds,
      stepsPerS: outcome.stepsPerS,
      device: outcome.device,
    };
    const meta: ResultMeta = {
      jobId: id,
      pack: data.pack,
      untrained: pack.untrained,
      resolution: pack.resolution,
      info,
      source: data.source,
      styleChannels: pack.styleChannels,
      timings: { queueMs: pickedAt - data.submittedAt, engineMs: Math.round(outcome.seconds * 1000), encodeMs: 0, batchSize: 1 },
      completedAt: Date.now(),
    };
    o.metrics.gradientRunSeconds.observe({ method: 'train-mapper' }, outcome.seconds);
    await job.progress(95);
    if (outcome.preview) await store.set(keys.resultPng(id), outcome.preview, o.resultTtlS);
    await setJSON(store, keys.resultMeta(id), meta, o.resultTtlS); // written last: its presence means "result complete"
    await store.del(keys.trainStarted(id)).catch(() => {});
  }

  return startToolkitLane({ ...o, capability: 'train-mapper', what: 'mapper training', run: handle });
}
