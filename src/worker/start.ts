// The worker, wired once for both `styleclip start` (beside the bot) and `styleclip worker` (alone): the
// engine in a worker thread, warmed on the default pack, behind the batching job handler.
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { PackCatalog } from '../engine/catalog.ts';
import type { JobQueue } from '../jobs/queue.ts';
import type { Store } from '../state/store.ts';
import { createThreadExecutor } from './thread-executor.ts';
import { startWorkerService, type WorkerService } from './service.ts';

export interface WorkerOptions {
  queue: JobQueue;
  store: Store;
  packs: PackCatalog;
  metrics: Metrics;
  log: Logger;
  device: 'cpu' | 'cuda';
  batchSize: number;
  batchWindowMs: number;
  resultTtlS: number;
  /** REDIS_OUTAGE_MS: how long a running job waits for Redis before it goes back to the queue (no try spent). */
  outageMs: number;
  /** Module exporting `openPack` (default src/engine/index.ts); tests pass a fake engine. */
  engineModule?: string;
}

/** Resolves once the engine has opened the default pack; a pack it can't open rejects with the engine's message. */
export async function startWorker(o: WorkerOptions): Promise<WorkerService> {
  const executor = createThreadExecutor({ engineModule: o.engineModule, device: o.device });
  try {
    await executor.warm(o.packs.defaultPack.dir);
  } catch (err) {
    await executor.close().catch(() => {});
    throw err;
  }
  return startWorkerService({ ...o, executor });
}
