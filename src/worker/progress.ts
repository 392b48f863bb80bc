// Progress of a gradient job (optimize, mapper training) as the bot shows it: the preview image and the step
// with its losses are stored first, then the percent goes through the queue, so the bot reading the
// progress event finds them (job-events.ts). Reports are written in order, best effort (not ridden out).
import type { ActiveJob } from '../jobs/queue.ts';
import { OPTIMIZE_START_PROGRESS, type StepProgress } from '../jobs/types.ts';
import { setJSON } from '../state/store.ts';
import { keys } from '../state/keys.ts';
import type { WorkerContext } from './context.ts';

export interface ProgressWriter {
  step(step: StepProgress, preview?: Buffer): void;
  /** Resolves once every report so far is written. */
  settled(): Promise<void>;
}

export function storeProgress(o: Pick<WorkerContext, 'store' | 'log' | 'resultTtlS'>, job: ActiveJob): ProgressWriter {
  let chain: Promise<void> = Promise.resolve();
  return {
    step(step, preview) {
      // Past OPTIMIZE_START_PROGRESS, up to 90 (the rest is the result being stored).
      const percent = Math.min(90, OPTIMIZE_START_PROGRESS + 1 + Math.floor((84 * step.step) / step.steps));
      const { step: n, steps, loss, clip } = step;
      chain = chain
        .then(async () => {
          if (preview) await o.store.set(keys.preview(job.id), preview, o.resultTtlS);
          const record: StepProgress = { step: n, steps, loss, clip, ...(preview ? { preview: true } : {}) };
          await setJSON(o.store, keys.progress(job.id), record, o.resultTtlS);
          await job.progress(percent);
        })
        .catch((err) => o.log.warn({ jobId: job.id, err: (err as Error).message }, 'progress not recorded'));
    },
    settled: () => chain,
  };
}
