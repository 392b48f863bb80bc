// The per-user and per-server running caps (`user-running`, `server-running`), held across all workers and
// the edit and optimize lanes: a job finding its user's or server's slots taken by jobs that started
// earlier goes back to the queue.
import type { Metrics } from '../metrics.ts';
import type { ActiveJob, InFlightJob, JobQueue } from '../jobs/queue.ts';
import { isTraining, PostponeJob } from '../jobs/types.ts';
import type { SettingsService } from '../state/settings.ts';

/** How the check reaches Redis: directly, or through a job's ride-out (ride.ts). */
type Ride = <T>(op: () => Promise<T>) => Promise<T>;
const direct: Ride = (op) => op();

/** How long a job over a running-jobs cap waits before it is looked at again. */
export const CAP_RETRY_MS = 1000;

/** Whether running job `other` started before `job` (ties by id), so exactly the first ones hold the slots. */
function startedBefore(other: InFlightJob, job: ActiveJob): boolean {
  const at = other.startedAt ?? 0;
  return at < job.startedAt || (at === job.startedAt && other.id < job.id);
}

/** Throws PostponeJob when `job` may not start yet; `queue.running()` must see every lane. */
export function runningCapsCheck(queue: JobQueue, settings: SettingsService, metrics: Metrics) {
  return async function checkRunningCaps(job: ActiveJob, ride: Ride = direct): Promise<void> {
    const { data } = job;
    const [s, active] = await ride(() => Promise.all([settings.get(data.scope), queue.running()]));
    // Mapper trainings (admins', one per server, on their own lane) hold no edit slot.
    const ahead = active.filter((j) => j.id !== job.id && !isTraining(j.data.spec) && startedBefore(j, job));
    const user = ahead.filter((j) => j.data.platform === data.platform && j.data.requesterId === data.requesterId).length;
    if (user >= s.userRunning) {
      metrics.postponed.inc({ cap: 'user' });
      throw new PostponeJob(`its user already has ${user} running (limit ${s.userRunning})`, CAP_RETRY_MS);
    }
    const server = ahead.filter((j) => j.data.scope === data.scope).length;
    if (server >= s.serverRunning) {
      metrics.postponed.inc({ cap: 'server' });
      throw new PostponeJob(`its server already has ${server} running (limit ${s.serverRunning})`, CAP_RETRY_MS);
    }
  };
}
