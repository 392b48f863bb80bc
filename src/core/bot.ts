// The bot core: commands, caps, job submission and delivery, nudges, results. Adapters talk to it through
// BotCore (types.ts). With Redis it shares state with other bot and worker processes; without, it runs the
// queue in process and (embedded default) the worker's engine in a worker thread.
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import type {
  BotCore,
  CommandDefinition,
  CommandInput,
  CommandReply,
  InvocationContext,
  JobUpdate,
  Nudge,
  Platform,
  ReplyTarget,
  ResultImage,
} from './types.ts';
import { refuse, UsageError, type Command, type CommandServices } from './command.ts';
import { parseInput } from './parse.ts';
import { PackCatalog } from './packs.ts';
import { SettingsService } from './settings.ts';
import { createLogger, type Logger } from '../log.ts';
import { Metrics } from '../metrics.ts';
import { MemoryStore, RedisStore, getJSON, setJSON, type Store } from '../jobs/store.ts';
import { MemoryQueue } from '../jobs/memory-queue.ts';
import { BullQueue } from '../jobs/bull-queue.ts';
import { defaultTuning, type JobQueue, type QueueTuning } from '../jobs/queue.ts';
import { keys, type EditJobData, type QueueEvent, type ResultMeta } from '../jobs/types.ts';
import { createThreadExecutor } from '../worker/thread-executor.ts';
import { startWorkerService, type WorkerService } from '../worker/service.ts';
import { defaultBatchSize } from '../worker/batcher.ts';
import styleclip, { describeResult, describeSpec, nudgedStrength } from '../../commands/styleclip.ts';
import admin from '../../commands/styleclip-admin.ts';
import help from '../../commands/styleclip-help.ts';
import info from '../../commands/styleclip-info.ts';
import cancel from '../../commands/styleclip-cancel.ts';

export const COMMANDS: Command[] = [styleclip, admin, help, info, cancel];

export interface BotOptions {
  /** Default model pack folder (STYLECLIP_PACK). */
  packDir: string;
  /** Folder of named packs for the admin "pack" setting (STYLECLIP_PACKS_DIR). */
  packsDir?: string;
  /** BullMQ + Redis state when set; in-process queue and memory otherwise. */
  redisUrl?: string;
  /** Redis key prefix for the store and BullMQ (default "styleclip"); tests use a unique one. */
  prefix?: string;
  resultTtlS?: number;
  /** Run a worker in this process (engine in a worker thread). Default: when there is no Redis. */
  worker?: boolean;
  /** Module exporting `openPack` (default src/engine/index.ts); tests pass a fake engine. */
  engineModule?: string;
  device?: string;
  batchSize?: number;
  batchWindowMs?: number;
  tuning?: Partial<QueueTuning>;
  logger?: Logger;
}

export interface Bot extends BotCore {
  readonly packs: PackCatalog;
  readonly queue: JobQueue;
  readonly store: Store;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** The in-process worker's throughput, when there is one. */
  workerStats(): ReturnType<WorkerService['stats']> | null;
  /** Prometheus text (refreshes the queue-depth gauge first). */
  metricsText(): Promise<string>;
  /**
   * First step of a shutdown, while the adapters still run: new jobs are refused, running ones finish
   * and their results go out. Without Redis, waiting jobs (which would be lost) are failed with a
   * message that says so. With Redis they stay queued for the next start or another worker.
   */
  drain(): Promise<void>;
  /** Stops taking work, lets running jobs finish, disconnects. */
  close(): Promise<void>;
  /** What a forced shutdown would abandon now: the in-process worker's running jobs, replies under way. */
  pending(): { runningJobs: string[]; repliesUnderWay: number };
  /**
   * The end of a shutdown past its grace period (e.g. Redis unreachable, so drain()/close() never return):
   * refuses new work and drops the connections at once. A drain() or close() under way may never resolve;
   * the process is expected to exit.
   */
  disconnect(): Promise<void>;
}

const FINAL = new Set(['completed', 'failed', 'cancelled']);

export const UNAVAILABLE = 'The job queue is unavailable right now; please try again in a minute.';
export const RESTARTING = 'The bot is restarting; please try again in a minute.';
export const LOST_IN_RESTART = 'Edit failed: the bot restarted before this job ran; please run it again.';

/** ioredis' errors while Redis is down or restarting (the store fails fast rather than buffering). */
function isRedisDown(err: unknown): boolean {
  const e = err as { name?: string; code?: string; message?: string };
  return (
    e?.name === 'MaxRetriesPerRequestError' ||
    ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes(e?.code ?? '') ||
    /enableOfflineQueue|Connection is closed|Stream isn't writeable/i.test(e?.message ?? '')
  );
}

/** BullMQ ids may not contain ':' nor be all digits; ours are `<platform>-<requestId>`. */
export function makeJobId(platform: Platform, requestId: string): string {
  return `${platform}-${requestId.replace(/[^A-Za-z0-9_.-]/g, '_')}`.slice(0, 120);
}

function scopeOf(ctx: { platform: Platform; serverId: string | null }): string {
  return `${ctx.platform}:${ctx.serverId ?? 'dm'}`;
}

export async function createBot(options: BotOptions): Promise<Bot> {
  const log = options.logger ?? createLogger(process.env.LOG_LEVEL ?? 'info', 'bot');
  const metrics = new Metrics();
  const prefix = options.prefix ?? 'styleclip';
  const ttl = options.resultTtlS ?? 7 * 24 * 3600;
  const tuning = { ...defaultTuning, ...options.tuning };
  const packs = new PackCatalog(options.packDir, options.packsDir);
  const store: Store = options.redisUrl ? RedisStore.connect(options.redisUrl, `${prefix}:`) : new MemoryStore();
  const queue: JobQueue = options.redisUrl ? new BullQueue({ redisUrl: options.redisUrl, prefix, tuning, onError: (err, source) => log.warn({ source, err: err.message }, 'queue connection error') }) : new MemoryQueue(tuning);
  const settings = new SettingsService(store, log);
  const listeners = new Map<Platform, Set<(u: JobUpdate) => void | Promise<void>>>();
  const commandsByName = new Map(COMMANDS.map((c) => [c.definition.name, c]));

  let worker: WorkerService | null = null;
  let executor: ReturnType<typeof createThreadExecutor> | null = null;
  try {
    await Promise.all([queue.ready(), store.ready()]);
    if (options.worker ?? !options.redisUrl) {
      executor = createThreadExecutor({ engineModule: options.engineModule, device: options.device });
      await executor.warm(packs.defaultPack.dir);
      worker = startWorkerService({
        queue,
        store,
        packs,
        executor,
        batchSize: options.batchSize ?? defaultBatchSize(options.device ?? 'cpu'),
        batchWindowMs: options.batchWindowMs ?? 5,
        resultTtlS: ttl,
        metrics,
        log,
      });
    }
  } catch (err) {
    await executor?.close().catch(() => {});
    await queue.close().catch(() => {});
    await store.close();
    throw err;
  }

  // ---- delivery ---------------------------------------------------------------------------------

  /** Sends an update to this process's adapters; false when another process handles it. */
  async function deliver(data: EditJobData, update: Omit<JobUpdate, 'jobId' | 'target' | 'requesterId'>): Promise<boolean> {
    const subscribers = listeners.get(data.platform);
    if (!subscribers?.size) return false; // another bot process serves this platform
    // Final updates are claimed once across all bot processes: each user gets exactly one result message.
    if (FINAL.has(update.status) && !(await store.setNX(keys.claim(data.jobId, 'final'), '1', ttl))) return false;
    const full: JobUpdate = { ...update, jobId: data.jobId, target: data.target, requesterId: data.requesterId };
    for (const listener of subscribers) {
      try {
        await listener(full);
      } catch (err) {
        log.error({ jobId: data.jobId, err: (err as Error).message }, 'update listener failed');
      }
    }
    return true;
  }

  // Queue positions move as jobs start: tell waiting jobs their new place, at most twice a second.
  const shownPosition = new Map<string, number>();
  let positionTimer: NodeJS.Timeout | null = null;
  let positionsAt = 0;
  function schedulePositions() {
    if (positionTimer) return;
    positionTimer = setTimeout(() => {
      positionTimer = null;
      positionsAt = Date.now();
      updatePositions().catch((err) => log.warn({ err: (err as Error).message }, 'position update failed'));
    }, Math.max(0, positionsAt + 500 - Date.now()));
    positionTimer.unref();
  }
  async function updatePositions() {
    const waiting = (await queue.inFlight()).filter((j) => j.state === 'waiting' && listeners.get(j.data.platform)?.size);
    const live = new Set(waiting.map((j) => j.id));
    for (const id of shownPosition.keys()) if (!live.has(id)) shownPosition.delete(id);
    for (const j of waiting) {
      if (shownPosition.get(j.id) === j.position) continue;
      shownPosition.set(j.id, j.position!);
      await deliver(j.data, { status: 'queued', position: j.position, text: `Queued ${describeSpec(j.data.spec)} — position ${j.position}.` });
    }
  }

  async function onQueueEvent(event: QueueEvent) {
    if (event.type === 'active') {
      // Others move up. The job itself is shown running at its first progress report: a job over its
      // running cap goes back to the queue right after it starts.
      schedulePositions();
      return;
    }
    const data = await getJSON<EditJobData>(store, keys.job(event.jobId));
    if (!data) return;
    switch (event.type) {
      case 'progress':
        await deliver(data, { status: 'running', progress: event.progress, text: `Running ${describeSpec(data.spec)}… ${event.progress}%` });
        return;
      case 'completed': {
        const meta = await getJSON<ResultMeta>(store, keys.resultMeta(event.jobId));
        if (!meta) {
          await deliver(data, { status: 'failed', text: 'Edit failed: its result was lost (storage full or expired).' });
          return;
        }
        if (!(await deliver(data, { status: 'completed', text: describeResult(data, meta) }))) return;
        metrics.jobs.inc({ status: 'completed' });
        metrics.jobLatency.observe({ outcome: 'completed' }, (Date.now() - data.submittedAt) / 1000);
        await store.push(keys.recent(data.platform, data.requesterId), data.jobId, 25, ttl);
        return;
      }
      case 'failed': {
        const cancelled = !!(await store.get(keys.cancel(event.jobId)));
        const delivered = cancelled
          ? await deliver(data, { status: 'cancelled', text: 'Cancelled.' })
          : await deliver(data, { status: 'failed', text: `Edit failed: ${event.reason}` });
        if (!delivered) return;
        metrics.jobs.inc({ status: cancelled ? 'cancelled' : 'failed' });
        metrics.jobLatency.observe({ outcome: cancelled ? 'cancelled' : 'failed' }, (Date.now() - data.submittedAt) / 1000);
        return;
      }
    }
  }

  // A final event that arrives while the store is still reconnecting (Redis restart) is retried, so
  // its reply is not lost; progress events are not worth it.
  const retryTimers = new Set<NodeJS.Timeout>();
  /** Events being handled, so a shutdown can wait for the replies under way. */
  const handling = new Set<Promise<void>>();
  function handleEvent(event: QueueEvent, attempt = 0) {
    const handled = onQueueEvent(event).catch((err) => {
      const final = event.type === 'completed' || event.type === 'failed';
      if (final && isRedisDown(err) && attempt < 12) {
        const timer = setTimeout(() => {
          retryTimers.delete(timer);
          handleEvent(event, attempt + 1);
        }, Math.min(250 * 2 ** attempt, 5000));
        retryTimers.add(timer);
        return;
      }
      log.error({ jobId: event.jobId, event: event.type, err: (err as Error).message }, 'event handling failed');
    });
    handling.add(handled);
    void handled.finally(() => handling.delete(handled));
  }
  const unsubscribeQueue = queue.onEvent((event) => handleEvent(event));

  // ---- submission ---------------------------------------------------------------------------------

  let submitChain: Promise<unknown> = Promise.resolve();
  /** Submissions run one at a time in this process so two quick requests cannot both slip under a cap. */
  function submit(data: EditJobData): Promise<CommandReply> {
    const run = submitChain.then(() => submitNow(data));
    submitChain = run.catch(() => {});
    return run;
  }

  let draining = false;
  let workerClosed: Promise<void> | undefined;
  const closeWorker = () => (workerClosed ??= worker?.close() ?? Promise.resolve());

  async function submitNow(data: EditJobData): Promise<CommandReply> {
    if (draining) return refuse(RESTARTING);
    const [inFlight, existing, s] = await Promise.all([
      queue.inFlight(),
      getJSON<EditJobData>(store, keys.job(data.jobId)),
      settings.get(data.scope),
    ]);
    if (existing) {
      const position = inFlight.find((j) => j.id === data.jobId)?.position ?? 0;
      return { text: `Already queued as job ${data.jobId}.`, job: { id: data.jobId, position } };
    }
    const mine = inFlight.filter((j) => j.data.platform === data.platform && j.data.requesterId === data.requesterId);
    if (mine.length >= s.userRunning + s.userWaiting) {
      metrics.refusals.inc({ reason: 'user_limit' });
      return refuse(
        `You already have ${mine.length} jobs running or waiting (limit: ${s.userRunning} running + ${s.userWaiting} waiting). ` +
          'Wait for one to finish, or cancel with /styleclip-cancel.',
      );
    }
    const server = inFlight.filter((j) => j.data.scope === data.scope);
    if (server.length >= s.serverRunning + s.serverWaiting) {
      metrics.refusals.inc({ reason: 'server_limit' });
      return refuse(`This server's queue is full (${server.length} jobs). Try again in a little while.`);
    }
    // A running limit of 0 pauses edits: a job accepted now would wait until an admin raises it.
    const paused = s.serverRunning === 0 ? 'server-running' : s.userRunning === 0 ? 'user-running' : null;
    if (paused) {
      metrics.refusals.inc({ reason: 'paused' });
      return refuse(`Edits are paused on this server (an admin set ${paused} to 0).`);
    }
    data = { ...data, priority: mine.length + 1 };
    await setJSON(store, keys.job(data.jobId), data, ttl);
    try {
      await queue.add(data);
    } catch (err) {
      await store.del(keys.job(data.jobId)).catch(() => {});
      log.error({ jobId: data.jobId, err: (err as Error).message }, 'queueing failed');
      return refuse(UNAVAILABLE);
    }
    const position = inFlight.filter((j) => j.state === 'waiting' && (j.data.priority ?? 1) <= data.priority!).length + 1;
    shownPosition.set(data.jobId, position);
    log.info({ jobId: data.jobId, scope: data.scope, user: data.requesterId, method: data.spec.method }, 'job queued');
    return { text: `Queued ${describeSpec(data.spec)} — position ${position}. Job ${data.jobId}.`, job: { id: data.jobId, position } };
  }

  async function cancelJob(jobId: string): Promise<'cancelled' | 'cancelling' | 'finished'> {
    // Flag first, so a job that starts meanwhile still sees it.
    await store.set(keys.cancel(jobId), '1', ttl);
    if (await queue.removeWaiting(jobId)) {
      schedulePositions();
      const data = await getJSON<EditJobData>(store, keys.job(jobId));
      if (data) {
        metrics.jobs.inc({ status: 'cancelled' });
        await deliver(data, { status: 'cancelled', text: 'Cancelled.' });
      }
      return 'cancelled';
    }
    if ((await queue.inFlight()).some((j) => j.id === jobId)) return 'cancelling';
    await store.del(keys.cancel(jobId));
    return 'finished';
  }

  const services: CommandServices = {
    settings,
    packs,
    scope: scopeOf,
    async serverSettings(ctx) {
      const s = await settings.get(scopeOf(ctx));
      return { settings: s, pack: packs.get(s.pack) ?? packs.defaultPack };
    },
    submit,
    job: (jobId) => getJSON<EditJobData>(store, keys.job(jobId)),
    result: (jobId) => getJSON<ResultMeta>(store, keys.resultMeta(jobId)),
    jobForMessage: (ctx, messageKey) => core.jobForMessage(ctx.platform, messageKey),
    inFlight: () => queue.inFlight(),
    recentResults: async (ctx) => store.list(keys.recent(ctx.platform, ctx.user.id), 25),
    cancel: cancelJob,
    commands: () => COMMANDS.map((c) => c.definition),
    jobId: (ctx) => makeJobId(ctx.platform, ctx.requestId),
  };

  // ---- BotCore ----------------------------------------------------------------------------------------

  const core: Bot = {
    packs,
    queue,
    store,
    metrics,
    log,

    commands: (): CommandDefinition[] => COMMANDS.map((c) => c.definition),

    async invoke(name, input: CommandInput, ctx: InvocationContext, target: ReplyTarget) {
      const command = commandsByName.get(name.replace(/^\//, ''));
      if (!command) return refuse(`Unknown command "/${name}". Try /styleclip-help.`);
      try {
        const args = parseInput(command.definition, input);
        const reply = await command.run(args, ctx, services, target);
        if (reply.error) metrics.refusals.inc({ reason: name });
        return reply;
      } catch (err) {
        if (err instanceof UsageError) {
          metrics.refusals.inc({ reason: 'usage' });
          return refuse(`${err.message} See /styleclip-help.`);
        }
        log.error({ command: name, user: ctx.user.id, err: (err as Error).message }, 'command failed');
        if (isRedisDown(err)) return refuse(UNAVAILABLE);
        return refuse('Sorry, something went wrong on our side; please try again shortly.');
      }
    },

    async autocomplete(name, option, partial, ctx) {
      const command = commandsByName.get(name);
      if (!command?.autocomplete) return [];
      try {
        return await command.autocomplete(option, partial, ctx, services);
      } catch {
        return [];
      }
    },

    async nudge(jobId: string, nudge: Nudge, userId: string, dedupeKey: string, target: ReplyTarget) {
      const data = await getJSON<EditJobData>(store, keys.job(jobId));
      if (!data || data.requesterId !== userId) return null;
      if (!(await store.setNX(keys.nudge(dedupeKey), '1', ttl))) return null;
      if (nudge === 'delete') {
        const outcome = await cancelJob(jobId);
        if (outcome !== 'finished') return { text: 'Cancelled.', ephemeral: true };
        await store.del(keys.resultPng(jobId), keys.resultWplus(jobId), keys.resultDelta(jobId), keys.resultMeta(jobId));
        return { text: 'Deleted.', ephemeral: true };
      }
      const s = await settings.get(data.scope);
      const wanted = nudgedStrength(data.spec.strength, nudge);
      const strength = Math.min(s.strengthMax, Math.max(s.strengthMin, wanted));
      if (strength === data.spec.strength) {
        return refuse(`Strength is already ${strength}, this server's ${nudge === 'stronger' ? 'most' : 'least'} for a nudge.`);
      }
      const hash = createHash('sha1').update(dedupeKey).digest('hex').slice(0, 16);
      return submit({
        ...data,
        jobId: `${data.platform}-n${hash}`,
        spec: { ...data.spec, strength },
        target,
        submittedAt: Date.now(),
        parentJobId: jobId,
      });
    },

    async resultImage(jobId: string, maxBytes = Number.POSITIVE_INFINITY): Promise<ResultImage | null> {
      const png = await store.get(keys.resultPng(jobId));
      if (!png) return null;
      if (png.length <= maxBytes) return { bytes: png, mime: 'image/png', filename: `${jobId}.png` };
      let smallest: ResultImage | null = null;
      for (const quality of [90, 75, 60]) {
        const bytes = await sharp(png).webp({ quality }).toBuffer();
        smallest = { bytes, mime: 'image/webp', filename: `${jobId}.webp` };
        if (bytes.length <= maxBytes) return smallest;
      }
      let size = (await sharp(png).metadata()).width ?? 1024;
      while (size > 32) {
        size = Math.floor(size / 2);
        const bytes = await sharp(png).resize(size, size).jpeg({ quality: 80 }).toBuffer();
        smallest = { bytes, mime: 'image/jpeg', filename: `${jobId}.jpg` };
        if (bytes.length <= maxBytes) return smallest;
      }
      return smallest;
    },

    onUpdate(platform, listener) {
      const set = listeners.get(platform) ?? new Set();
      set.add(listener);
      listeners.set(platform, set);
      return () => set.delete(listener);
    },

    async linkMessage(platform, messageKey, jobId) {
      await store.set(keys.link(platform, messageKey), jobId, ttl);
    },

    async jobForMessage(platform, messageKey) {
      return (await store.get(keys.link(platform, messageKey)))?.toString('utf8') ?? null;
    },

    workerStats: () => worker?.stats() ?? null,

    async metricsText() {
      try {
        const jobs = await queue.inFlight();
        metrics.queueDepth.set({ state: 'waiting' }, jobs.filter((j) => j.state === 'waiting').length);
        metrics.queueDepth.set({ state: 'active' }, jobs.filter((j) => j.state === 'active').length);
      } catch {
        // queue unreachable: keep the last values
      }
      return metrics.text();
    },

    async drain() {
      draining = true;
      await closeWorker();
      if (!options.redisUrl) {
        for (const job of await queue.inFlight()) {
          if (job.state === 'waiting' && (await queue.removeWaiting(job.id))) {
            if (await deliver(job.data, { status: 'failed', text: LOST_IN_RESTART })) metrics.jobs.inc({ status: 'failed' });
          }
        }
      }
      await Promise.allSettled([...handling]);
    },

    async close() {
      draining = true;
      unsubscribeQueue();
      if (positionTimer) clearTimeout(positionTimer);
      for (const timer of retryTimers) clearTimeout(timer);
      await closeWorker();
      await queue.close();
      await store.close();
    },

    pending: () => ({ runningJobs: worker?.running() ?? [], repliesUnderWay: handling.size }),

    async disconnect() {
      draining = true;
      unsubscribeQueue();
      if (positionTimer) clearTimeout(positionTimer);
      for (const timer of retryTimers) clearTimeout(timer);
      queue.disconnect();
      await store.close();
    },
  };
  return core;
}
