// The worker, wired once for both `styleclip start` (beside the bot) and `styleclip worker` (alone): the
// engine in a worker thread, warmed on the default pack, behind the batching job handler.
import { createThreadExecutor } from './thread-executor.ts';
import { startWorkerService } from './service.ts';
import { startGradientLane, type WorkerWithGradients } from './gradient-start.ts';
import type { OptimizeMode } from './optimizer.ts';
import type { WorkerContext } from './context.ts';

export interface WorkerOptions extends WorkerContext {
  batchSize: number;
  batchWindowMs: number;
  /** Module exporting `openPack` (default src/engine/index.ts); tests pass a fake engine. */
  engineModule?: string;
  /** Optimize jobs (STYLECLIP_OPTIMIZE): auto = when PyTorch is found (default), on = required, off = never. */
  optimize?: OptimizeMode;
  /** Longest an optimize job may run (OPTIMIZE_BUDGET_S, default 600). */
  optimizeBudgetS?: number;
  /** Longest a mapper training may run (TRAIN_BUDGET_S, default 4 h). */
  trainBudgetS?: number;
  /** Mapper trainings beside optimize jobs (STYLECLIP_TRAIN, default on). */
  train?: boolean;
}

/** Resolves once the engine has opened the default pack; a pack it can't open rejects with the engine's message. */
export async function startWorker(o: WorkerOptions): Promise<WorkerWithGradients> {
  const executor = createThreadExecutor({ engineModule: o.engineModule, device: o.device });
  try {
    await executor.warm(o.packs.defaultPack.dir);
  } catch (err) {
    await executor.close().catch(() => {});
    throw err;
  }
  const service = startWorkerService({ ...o, executor });
  // The gradient lanes (optimize jobs and mapper trainings on PyTorch) beside it, when PyTorch is here.
  return startGradientLane(o, service);
}
