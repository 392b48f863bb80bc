// What every part of a worker is handed: the queue (both lanes), the shared store, the packs, metrics, logs.
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { PackCatalog } from '../engine/catalog.ts';
import type { JobQueue } from '../jobs/queue.ts';
import type { Store } from '../state/store.ts';

export interface WorkerContext {
  queue: JobQueue;
  store: Store;
  packs: PackCatalog;
  metrics: Metrics;
  log: Logger;
  device: 'cpu' | 'cuda';
  resultTtlS: number;
  /** REDIS_OUTAGE_MS: how long a running job waits for Redis before it goes back to the queue (no try spent). */
  outageMs: number;
}
