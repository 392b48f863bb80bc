// Starts a worker's gradient lane (optimize jobs) beside its edit lane, when the queue has one, the worker is
// allowed to (STYLECLIP_OPTIMIZE) and PyTorch is here. `auto` looks for PyTorch in the background, so the
// worker is ready for edits at once; `on` waits for it and refuses to start without it.
import { gradientLane } from '../jobs/lanes.ts';
import { SettingsService } from '../state/settings.ts';
import { probeTorch, type OptimizeMode } from './optimizer.ts';
import { startOptimizeLane, type OptimizeLane } from './optimize-lane.ts';
import { runningCapsCheck } from './running-caps.ts';
import type { WorkerService } from './service.ts';
import type { WorkerContext } from './context.ts';

export interface GradientStartOptions extends WorkerContext {
  optimize?: OptimizeMode;
  optimizeBudgetS?: number;
}

/** What a worker says about its gradient lane (/healthz). */
export type GradientStatus = { optimize: 'off' | 'probing' | 'unavailable'; reason?: string } | ({ optimize: 'on' } & ReturnType<OptimizeLane['stats']>);

export type WorkerWithGradients = WorkerService & { gradients(): GradientStatus };

export async function startGradientLane(o: GradientStartOptions, service: WorkerService): Promise<WorkerWithGradients> {
  const lane = gradientLane(o.queue);
  const mode = o.optimize ?? 'auto';
  let status: GradientStatus = { optimize: 'off' };
  let optimizer: OptimizeLane | null = null;
  let closed = false;

  const begin = async () => {
    const torch = await probeTorch();
    if (closed) return;
    if (!torch.ok) {
      status = { optimize: 'unavailable', reason: torch.reason };
      const text = `method:optimize is off on this worker: no PyTorch (${torch.reason}). Install python3-torch and python3-onnx (Debian) or set STYLECLIP_PYTHON; edits run as usual.`;
      if (mode === 'on') throw new Error(`STYLECLIP_OPTIMIZE=on: ${text}`);
      o.log.warn({ reason: torch.reason }, text);
      return;
    }
    optimizer = startOptimizeLane({
      ...o,
      queue: lane!,
      budgetS: o.optimizeBudgetS ?? 600,
      torch,
      checkRunningCaps: runningCapsCheck(o.queue, new SettingsService(o.store, o.log), o.metrics),
    });
    status = { optimize: 'on', ...optimizer.stats() };
  };

  if (lane && mode !== 'off') {
    status = { optimize: 'probing' };
    if (mode === 'on') {
      await begin().catch(async (err) => {
        await service.close().catch(() => {});
        throw err;
      });
    } else {
      begin().catch((err) => o.log.error({ err: (err as Error).message }, 'optimize lane failed to start'));
    }
  }

  return {
    ...service,
    running: () => [...service.running(), ...(optimizer?.running() ?? [])],
    gradients: () => (optimizer ? { optimize: 'on', ...optimizer.stats() } : status),
    async close() {
      closed = true;
      await Promise.all([optimizer?.close(), service.close()]);
    },
  };
}
