// Putting jobs on the queue and taking them off: the per-user and per-server caps checked at submission,
// idempotent job ids, fair priority, the queue position in the reply; cancelling and deleting results.
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { InFlightJob, JobQueue } from '../jobs/queue.ts';
import { isOptimize, isTraining, type EditJobData, type ResultMeta } from '../jobs/types.ts';
import { laneOf } from '../jobs/lanes.ts';
import { deletePhoto } from '../state/photos.ts';
import { getJSON, isRedisDown, setJSON, type Store } from '../state/store.ts';
import type { RedisHealth } from '../state/redis-health.ts';
import { keys } from '../state/keys.ts';
import { capableWorker } from '../state/capabilities.ts';
import type { ServerSettings, SettingsService } from '../state/settings.ts';
import { SerialQueue } from '../util/serial-queue.ts';
import { describeSpec } from './captions.ts';
import { refuse } from './command.ts';
import type { JobEvents } from './job-events.ts';
import type { Watchdog } from './watchdog.ts';
import type { CommandReply } from './types.ts';

export const UNAVAILABLE = 'The job queue is temporarily unavailable; please try again in a moment.';
export const RESTARTING = 'The bot is restarting; please try again in a minute.';
export const NO_OPTIMIZER =
  'No worker that can run method:optimize is running now (latent optimization needs PyTorch on a worker). ' +
  'Use method:global or method:mapper, or ask the operator to start a gradient worker (docs/operations.md).';
export const NO_TRAINER =
  'No worker that can train mappers is running now (training needs PyTorch on a worker); ask the operator to start a gradient worker (docs/operations.md).';
export const LOST_IN_RESTART = 'Edit failed: the bot restarted before this job ran; please run it again.';

export type CancelOutcome = 'cancelled' | 'cancelling' | 'finished';

export interface SubmissionsOptions {
  queue: JobQueue;
  store: Store;
  settings: SettingsService;
  events: JobEvents;
  /** Watches the jobs queued here until they are answered (with Redis; null in embedded mode). */
  watchdog: Watchdog | null;
  /** While Redis is known to be away, commands are refused at once, without trying it. */
  health: RedisHealth | null;
  metrics: Metrics;
  log: Logger;
  resultTtlS: number;
}

/** Why a new job may not join the queue now, given what the user and the server already have in flight. */
function capRefusal(s: ServerSettings, userJobs: number, serverJobs: number): { reason: string; text: string } | null {
  if (userJobs >= s.userRunning + s.userWaiting) {
    const text =
      `You already have ${userJobs} jobs running or waiting (limit: ${s.userRunning} running + ${s.userWaiting} waiting). ` +
      'Wait for one to finish, or cancel with /styleclip-cancel.';
    return { reason: 'user_limit', text };
  }
  if (serverJobs >= s.serverRunning + s.serverWaiting) {
    return { reason: 'server_limit', text: `This server's queue is full (${serverJobs} jobs). Try again in a little while.` };
  }
  // A running limit of 0 pauses edits: a job accepted now would wait until an admin raises it.
  const paused = s.serverRunning === 0 ? 'server-running' : s.userRunning === 0 ? 'user-running' : null;
  return paused ? { reason: 'paused', text: `Edits are paused on this server (an admin set ${paused} to 0).` } : null;
}

/** One training per server at a time. */
function trainingRefusal(training: InFlightJob[]): { reason: string; text: string } | null {
  if (!training.length) return null;
  const { jobId, spec } = training[0].data;
  return {
    reason: 'training_running',
    text: `This server is already training a mapper ("${spec.prompt}", job ${jobId}); wait for it to finish, or stop it with /styleclip-admin train-cancel.`,
  };
}

export class Submissions {
  /** Set once a shutdown starts: new jobs are refused. */
  private closing = false;
  /** Submissions run one at a time in this process so two quick requests cannot both slip under a cap. */
  private readonly serial = new SerialQueue();

  constructor(private readonly o: SubmissionsOptions) {}

  submit(data: EditJobData): Promise<CommandReply> {
    return this.serial.run('submit', () => this.submitNow(data));
  }

  refuseNew(): void {
    this.closing = true;
  }

  /** Cancels a waiting job at once (and says so), or flags a running one for its worker. */
  async cancel(jobId: string): Promise<CancelOutcome> {
    const { store, queue, events } = this.o;
    // Flag first, so a job that starts meanwhile still sees it.
    await store.set(keys.cancel(jobId), '1', this.o.resultTtlS);
    if (await queue.removeWaiting(jobId)) {
      events.positionsChanged();
      const data = await getJSON<EditJobData>(store, keys.job(jobId));
      if (data) {
        events.count(data, 'cancelled', false);
        await events.deliver(data, { status: 'cancelled', text: 'Cancelled.' });
      }
      return 'cancelled';
    }
    if ((await queue.inFlight()).some((j) => j.id === jobId)) return 'cancelling';
    await store.del(keys.cancel(jobId));
    return 'finished';
  }

  /** Deletes a finished job's stored result (its image, latent and caption data). */
  async deleteResult(jobId: string): Promise<void> {
    const meta = await getJSON<ResultMeta>(this.o.store, keys.resultMeta(jobId));
    await this.o.store.del(keys.resultPng(jobId), keys.resultWplus(jobId), keys.resultDelta(jobId), keys.resultBeforeAfter(jobId), keys.resultMeta(jobId));
    // A photo result takes its photo (and the photo's crop and inversion) with it.
    if (meta?.photo) await deletePhoto(this.o.store, meta.photo.key);
  }

  /** In-process queue only: waiting jobs die with the process, so their users are told now. */
  async failWaiting(): Promise<void> {
    const { queue, events } = this.o;
    for (const job of await queue.inFlight()) {
      if (job.state === 'waiting' && (await queue.removeWaiting(job.id))) {
        if (await events.deliver(job.data, { status: 'failed', text: LOST_IN_RESTART })) events.count(job.data, 'failed', false);
      }
    }
  }

  private async submitNow(data: EditJobData): Promise<CommandReply> {
    if (this.closing) return refuse(RESTARTING);
    const { queue, store, metrics, log, health, watchdog } = this.o;
    if (health && !health.up) {
      metrics.refusals.inc({ reason: 'redis_down' });
      return refuse(UNAVAILABLE);
    }
    const [inFlight, existing, s] = await Promise.all([
      queue.inFlight(),
      getJSON<EditJobData>(store, keys.job(data.jobId)),
      this.o.settings.get(data.scope),
    ]);
    if (existing) {
      const position = inFlight.find((j) => j.id === data.jobId)?.position ?? 0;
      return { text: `Already queued as job ${data.jobId}.`, job: { id: data.jobId, position } };
    }
    // Gradient jobs only run on workers with PyTorch: with none alive, say so now rather than queue a job that waits.
    const spec = data.spec;
    if ((isOptimize(spec) || isTraining(spec)) && !(await capableWorker(store, spec.method))) {
      metrics.refusals.inc({ reason: 'no_gradient_worker' });
      return refuse(isTraining(spec) ? NO_TRAINER : NO_OPTIMIZER);
    }
    // A training is an admin's, limited to one per server, and outside the edit caps (it would hold a slot for hours).
    const edits = inFlight.filter((j) => !isTraining(j.data.spec));
    const mine = edits.filter((j) => j.data.platform === data.platform && j.data.requesterId === data.requesterId);
    const refusal = isTraining(spec)
      ? trainingRefusal(inFlight.filter((j) => isTraining(j.data.spec) && j.data.scope === data.scope))
      : capRefusal(s, mine.length, edits.filter((j) => j.data.scope === data.scope).length);
    if (refusal) {
      metrics.refusals.inc({ reason: refusal.reason });
      return refuse(refusal.text);
    }
    data = { ...data, priority: isTraining(spec) ? 1 : mine.length + 1 };
    await setJSON(store, keys.job(data.jobId), data, this.o.resultTtlS);
    try {
      await queue.add(data);
    } catch (err) {
      // Redis went away between the record and the job: undo the record now, or (Redis away) once it is back.
      await store.del(keys.job(data.jobId)).catch(() => watchdog?.rollBack(data.jobId));
      if (!isRedisDown(err)) log.error({ jobId: data.jobId, err: (err as Error).message }, 'queueing failed');
      metrics.refusals.inc({ reason: 'redis_down' });
      return refuse(UNAVAILABLE);
    }
    watchdog?.watch(data);
    // Its place in its own lane (optimize jobs wait only behind optimize jobs: src/jobs/lanes.ts).
    const lane = laneOf(data);
    const position = inFlight.filter((j) => j.state === 'waiting' && laneOf(j.data) === lane && (j.data.priority ?? 1) <= data.priority!).length + 1;
    this.o.events.queuedAt(data.jobId, position);
    log.info({ jobId: data.jobId, scope: data.scope, user: data.requesterId, method: data.spec.method }, 'job queued');
    return { text: `Queued ${describeSpec(data.spec)} — position ${position}. Job ${data.jobId}.`, job: { id: data.jobId, position } };
  }
}
