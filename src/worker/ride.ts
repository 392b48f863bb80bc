// Riding out a Redis outage, for both lanes of a worker (edits in service.ts, optimizations in
// optimize-lane.ts): a job's store calls are retried through an outage up to REDIS_OUTAGE_MS; past it the job
// goes back to the queue without spending a try (an outage is not the job's fault).
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { ActiveJob } from '../jobs/queue.ts';
import { PostponeJob } from '../jobs/types.ts';
import { rideOut, RedisOutageTooLong } from '../state/redis-health.ts';
import type { Store } from '../state/store.ts';
import { CAP_RETRY_MS } from './running-caps.ts';

export type Ride = <T>(op: () => Promise<T>) => Promise<T>;

/** The store with every call passed through `ride` (retried through a Redis outage). */
export function ridingStore(store: Store, ride: Ride): Store {
  return {
    get: (key) => ride(() => store.get(key)),
    set: (key, value, ttlS) => ride(() => store.set(key, value, ttlS)),
    setNX: (key, value, ttlS) => store.setNX(key, value, ttlS), // a claim: a retry could not tell "mine" from "taken"
    del: (...k) => ride(() => store.del(...k)),
    push: (key, value, max, ttlS) => store.push(key, value, max, ttlS), // not idempotent: not retried
    list: (key, count) => ride(() => store.list(key, count)),
    ready: () => store.ready(),
    close: () => store.close(),
  };
}

export interface RideOptions {
  /** REDIS_OUTAGE_MS. */
  outageMs: number;
  metrics: Metrics;
  log: Logger;
}

/**
 * Runs `handle(job, ride)`: its store calls (through `ride`) wait out an outage; one longer than the bound hands
 * the job back to the queue (PostponeJob, no try spent) to run again.
 */
export async function rideOutJob(o: RideOptions, job: ActiveJob, handle: (job: ActiveJob, ride: Ride) => Promise<void>): Promise<void> {
  let metOutage = false;
  const ride: Ride = (op) => rideOut(op, o.outageMs, () => (metOutage = true));
  try {
    await handle(job, ride);
  } catch (err) {
    if (err instanceof RedisOutageTooLong) {
      // Not the job's fault: back to the queue without spending a try (BullMQ records that once Redis is
      // back), to run again.
      o.metrics.riddenOut.inc({ outcome: 'handed_back' });
      o.log.warn({ jobId: job.id, err: err.message }, 'job handed back to the queue: Redis away too long');
      throw new PostponeJob(err.message, CAP_RETRY_MS);
    }
    throw err;
  }
  if (metOutage) {
    o.metrics.riddenOut.inc({ outcome: 'finished' });
    o.log.debug({ jobId: job.id }, 'job rode out a Redis outage'); // the outage itself is logged once
  }
}
