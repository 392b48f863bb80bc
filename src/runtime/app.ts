// Assembles the bot process: the state and the queue (Redis when REDIS_URL is set, in-process otherwise),
// the bot core with the commands, and (all-in-one, or whenever there is no Redis) a worker beside it.
import path from 'node:path';
import { COMMANDS } from '../../commands/index.ts';
import { Bot } from '../core/bot.ts';
import { PackCatalog } from '../engine/catalog.ts';
import { BullQueue, isLostJobError, LANE_QUEUE_NAMES } from '../jobs/bull-queue.ts';
import { LaneQueue } from '../jobs/lanes.ts';
import { MemoryQueue } from '../jobs/memory-queue.ts';
import { defaultTuning, type JobQueue, type QueueTuning } from '../jobs/queue.ts';
import type { Logger } from '../log.ts';
import { Metrics } from '../metrics.ts';
import { isRedisDown, MemoryStore, type Store } from '../state/store.ts';
import { RedisHealth } from '../state/redis-health.ts';
import { RedisStore } from '../state/redis-store.ts';
import type { WorkerService } from '../worker/service.ts';
import { startWorker } from '../worker/start.ts';
import type { GradientStatus, WorkerWithGradients } from '../worker/gradient-start.ts';
import type { Config } from '../config.ts';

export interface AppOptions
  extends Pick<Config, 'packDir' | 'packsDir' | 'redisUrl' | 'resultTtlS' | 'device' | 'batchSize' | 'batchWindowMs' | 'outageMs' | 'watchdogMs'>,
    Partial<Pick<Config, 'optimize' | 'optimizeBudgetS' | 'trainBudgetS' | 'train' | 'dataDir'>> {
  /** Redis key prefix for the store and BullMQ (STYLECLIP_REDIS_PREFIX); tests use a unique one. */
  prefix: string;
  /** Run a worker in this process (engine in a worker thread). Always, without Redis. */
  worker: boolean;
  tuning: QueueTuning;
  logger: Logger;
  /** Module exporting `openPack` (default src/engine/index.ts); tests pass a fake engine. */
  engineModule?: string;
}

/** The queue's retry and lock settings from the configuration, the same for the bot and the worker processes. */
export function queueTuning(config: Pick<Config, 'lockMs'>): QueueTuning {
  return { ...defaultTuning, lockDurationMs: config.lockMs, stalledIntervalMs: config.lockMs };
}

/** The options for a configuration (`loadConfig()`), with overrides; the worker runs in process when there is no Redis. */
export function appOptions(config: Config, overrides: Partial<AppOptions> & Pick<AppOptions, 'logger'>): AppOptions {
  const redisUrl = 'redisUrl' in overrides ? overrides.redisUrl : config.redisUrl;
  return { ...config, prefix: config.redisPrefix, worker: !redisUrl, tuning: queueTuning(config), ...overrides };
}

export class App extends Bot {
  constructor(
    bot: ConstructorParameters<typeof Bot>[0],
    private readonly worker: WorkerService | null,
  ) {
    super(bot);
  }

  /** The in-process worker's gradient lane (optimize jobs): on, probing, unavailable (why) or off. */
  gradients(): GradientStatus | null {
    return (this.worker as WorkerWithGradients | null)?.gradients?.() ?? null;
  }

  /** /healthz's body: `ok: false` (a 503) while Redis is away. */
  async health(role: string): Promise<Record<string, unknown>> {
    const redis = this.redis();
    if (redis && !redis.up) return { ok: false, role, status: 'redis down', redisDownForS: redis.downForS };
    await this.store.get('healthz'); // throws while Redis is unreachable → 503
    const pack = this.packs.defaultPack;
    return {
      ok: true,
      role,
      queue: redis ? 'redis' : 'memory',
      pack: pack.name,
      untrained: pack.untrained,
      worker: this.workerStats(),
      gradients: this.gradients(),
    };
  }

  /** The in-process worker's throughput, when there is one. */
  workerStats(): ReturnType<WorkerService['stats']> | null {
    return this.worker?.stats() ?? null;
  }

  /**
   * First step of a shutdown, while the adapters still run: new jobs are refused, running ones finish and
   * their results go out; then the bot core drains (see Bot.drain).
   */
  override async drain(): Promise<void> {
    this.refuseNew();
    await this.closeWorker();
    await super.drain();
  }

  override async close(): Promise<void> {
    this.refuseNew();
    await this.closeWorker();
    await super.close();
  }

  /** What a forced shutdown would abandon now: the in-process worker's running jobs, replies under way. */
  pending(): { runningJobs: string[]; repliesUnderWay: number } {
    return { runningJobs: this.worker?.running() ?? [], repliesUnderWay: this.repliesUnderWay() };
  }

  private workerClosed: Promise<void> | undefined;
  private closeWorker(): Promise<void> {
    return (this.workerClosed ??= this.worker?.close() ?? Promise.resolve());
  }
}

export async function createApp(o: AppOptions): Promise<App> {
  const log = o.logger;
  const packs = new PackCatalog(o.packDir, o.packsDir, o.dataDir ? path.join(o.dataDir, 'mappers') : undefined);
  const metrics = new Metrics();
  const redisStore = o.redisUrl ? RedisStore.connect(o.redisUrl, `${o.prefix}:`) : null;
  const store: Store = redisStore ?? new MemoryStore();
  const health = redisStore ? new RedisHealth({ log, metrics, boundMs: o.outageMs }).watch(redisStore.connection) : null;
  const onError = queueErrorLogger(log);
  // Three lanes: fast edits, and gradient jobs (optimize, mapper training) that only workers with PyTorch take (src/jobs/lanes.ts).
  const queue: JobQueue = new LaneQueue((lane) =>
    o.redisUrl ? new BullQueue({ redisUrl: o.redisUrl, prefix: o.prefix, tuning: o.tuning, onError, name: LANE_QUEUE_NAMES[lane] }) : new MemoryQueue(o.tuning),
  );
  let worker: WorkerService | null = null;
  try {
    await Promise.all([queue.ready(), store.ready()]);
    if (o.worker || !o.redisUrl) {
      worker = await startWorker({ ...o, queue, store, packs, metrics, log });
    }
  } catch (err) {
    await queue.close().catch(() => {});
    await store.close();
    throw err;
  }
  return new App(
    { commands: COMMANDS, packs, store, queue, metrics, log, resultTtlS: o.resultTtlS, health, outageMs: o.outageMs, watchdogMs: o.watchdogMs },
    worker,
  );
}

/**
 * BullMQ's connection errors, for the logs. Lost connections are not among them: RedisHealth logs an outage
 * once when it starts and once when it ends, where each reconnect attempt would log one here.
 */
export function queueErrorLogger(log: Logger): (err: Error, source: string) => void {
  return (err, source) => {
    if (isRedisDown(err)) return;
    // A job gone from Redis (lost with its data, removed by hand): the watchdog of the bot that awaits it deals with it.
    if (isLostJobError(err)) log.info({ source, err: err.message }, 'job no longer in the queue');
    else log.warn({ source, err: err.message }, 'queue connection error');
  };
}
