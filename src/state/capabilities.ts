// Which kinds of job the live workers can run. A worker that can run gradient jobs (latent optimization, mapper
// training: it found PyTorch) keeps `capability:<method>` alive with a heartbeat; the bot checks it at
// submission, so a user whose command no worker could take hears it at once instead of waiting for a job that
// never starts.
import { getJSON, setJSON, type Store } from './store.ts';
import { keys } from './keys.ts';

export type Capability = 'optimize' | 'train-mapper';

export interface CapabilityRecord {
  /** The worker that renewed it last (host:pid). */
  worker: string;
  device: string;
  /** PyTorch's version on that worker. */
  torch?: string;
  at: number;
}

/** A worker renews its record this often; the record lives three times as long, so one missed beat is harmless. */
export const HEARTBEAT_MS = 5000;

export async function capableWorker(store: Store, capability: Capability): Promise<CapabilityRecord | null> {
  return getJSON<CapabilityRecord>(store, keys.capability(capability));
}

export interface Advertisement {
  /** Stops renewing and, if the record is still this worker's, removes it. */
  stop(): Promise<void>;
}

/** Advertises `capability` until stopped. Store errors (Redis away) are left to the next beat. */
export function advertise(store: Store, capability: Capability, record: Omit<CapabilityRecord, 'at'>, everyMs = HEARTBEAT_MS): Advertisement {
  const ttlS = Math.max(1, Math.ceil((everyMs * 3) / 1000));
  const beat = () => setJSON(store, keys.capability(capability), { ...record, at: Date.now() }, ttlS).catch(() => {});
  let last = beat();
  const timer = setInterval(() => (last = beat()), everyMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await last;
      try {
        const now = await capableWorker(store, capability);
        if (now?.worker === record.worker) await store.del(keys.capability(capability));
      } catch {
        // Redis away: the record lapses by itself.
      }
    },
  };
}
