// Starts a worker's gradient lanes (optimize jobs, mapper trainings) beside its edit lane, when the queue has
// them, the worker is allowed to (STYLECLIP_OPTIMIZE) and PyTorch is here. `auto` looks for PyTorch in the
// background, so the worker is ready for edits at once; `on` waits for it and refuses to start without it.
import { laneQueue } from '../jobs/lanes.ts';
import { SettingsService } from '../state/settings.ts';
import { probeTorch, type OptimizeMode } from './optimizer.ts';
import { startOptimizeLane, type OptimizeLane } from './optimize-lane.ts';
import { startTrainLane } from './train-lane.ts';
import type { ToolkitLane } from './toolkit-lane.ts';
import { runningCapsCheck } from './running-caps.ts';
import type { WorkerService } from './service.ts';
import type { WorkerContext } from './context.ts';

export interface GradientStartOptions extends WorkerContext {
  optimize?: OptimizeMode;
  optimizeBudgetS?: number;
  /** Longest a mapper training may run (TRAIN_BUDGET_S, default 4 h). */
  trainBudgetS?: number;
  /** Whether mapper trainings run here too (STYLECLIP_TRAIN, default on): off keeps a small GPU to optimizations. */
  train?: boolean;
}

/** What a worker says about its gradient lanes (/healthz). */
export type GradientStatus =
  | { optimize: 'off' | 'probing' | 'unavailable'; reason?: string }
  | ({ optimize: 'on' } & ReturnType<OptimizeLane['stats']> & { training: ReturnType<ToolkitLane['stats']> | 'off' });

export type WorkerWithGradients = WorkerService & { gradients(): GradientStatus };

export async function startGradientLane(o: GradientStartOptions, service: WorkerService): Promise<WorkerWithGradients> {
  const optimizeQueue = laneQueue(o.queue, 'gradient');
  const trainQueue = laneQueue(o.queue, 'training');
  const mode = o.optimize ?? 'auto';
  let status: GradientStatus = { optimize: 'off' };
  let lanes: { optimize: OptimizeLane; train: ToolkitLane | null } | null = null;
  let closed = false;

  const begin = async () => {
    const torch = await probeTorch();
    if (closed) return;
    if (!torch.ok) {
      status = { optimize: 'unavailable', reason: torch.reason };
      const text = `method:optimize and mapper training are off on this worker: no PyTorch (${torch.reason}). Install python3-torch and python3-onnx (Debian) or set STYLECLIP_PYTHON; edits run as usual.`;
      if (mode === 'on') throw new Error(`STYLECLIP_OPTIMIZE=on: ${text}`);
      o.log.warn({ reason: torch.reason }, text);
      return;
    }
    lanes = {
      optimize: startOptimizeLane({
        ...o,
        queue: optimizeQueue!,
        budgetS: o.optimizeBudgetS ?? 600,
        torch,
        checkRunningCaps: runningCapsCheck(o.queue, new SettingsService(o.store, o.log), o.metrics),
      }),
      train: o.train === false ? null : startTrainLane({ ...o, queue: trainQueue!, budgetS: o.trainBudgetS ?? 4 * 3600, torch }),
    };
  };

  if (optimizeQueue && trainQueue && mode !== 'off') {
    status = { optimize: 'probing' };
    if (mode === 'on') {
      await begin().catch(async (err) => {
        await service.close().catch(() => {});
        throw err;
      });
    } else {
      begin().catch((err) => o.log.error({ err: (err as Error).message }, 'gradient lanes failed to start'));
    }
  }

  const current = (): { optimize: OptimizeLane; train: ToolkitLane | null } | null => lanes;
  return {
    ...service,
    running: () => [...service.running(), ...(current()?.optimize.running() ?? []), ...(current()?.train?.running() ?? [])],
    gradients: () => {
      const l = current();
      return l ? { optimize: 'on', ...l.optimize.stats(), training: l.train?.stats() ?? 'off' } : status;
    },
    async close() {
      closed = true;
      const l = current();
      await Promise.all([l?.optimize.close(), l?.train?.close(), service.close()]);
    },
  };
}
