// `styleclip start | bot | worker`: process wiring. The CLI dispatcher (src/cli/main.ts) calls these.
//   start  — adapters + worker in one process (embedded default: in-process queue, engine in a worker thread;
//            with REDIS_URL the same on BullMQ)
//   bot    — adapters only (with REDIS_URL; without it the worker has to run in-process anyway)
//   worker — takes jobs from Redis: one process per GPU
import path from 'node:path';
import { config as loadDotenv } from 'dotenv';
import { UsageError } from '../errors.ts';
import { ConfigError, loadConfig, type Config } from '../config.ts';
import { createLogger, safeUrl, type Logger } from '../log.ts';
import { Metrics } from '../metrics.ts';
import type { AdapterHandle, BotCore } from '../core/types.ts';
import { PackCatalog } from '../engine/catalog.ts';
import { createPlayground } from '../adapters/playground/index.ts';
import { startOpsServer } from './http.ts';
import { appOptions, createApp, queueErrorLogger, queueTuning } from './app.ts';
import { BullQueue, LANE_QUEUE_NAMES } from '../jobs/bull-queue.ts';
import { LaneQueue } from '../jobs/lanes.ts';
import { settlesWithin } from '../jobs/queue.ts';
import { RedisStore } from '../state/redis-store.ts';
import { RedisHealth } from '../state/redis-health.ts';
import { startWorker } from '../worker/start.ts';

const HELP: Record<string, string> = {
  start: 'usage: styleclip start\n  Bot and worker in one process; serves the playground at http://$HOST:$PORT when no platform token is set.',
  bot: 'usage: styleclip bot\n  Platform adapters only (needs REDIS_URL for separate workers); PLAYGROUND=1 adds the playground.',
  worker: 'usage: styleclip worker\n  Takes edit jobs from Redis (REDIS_URL); run one per GPU (STYLECLIP_DEVICE=cuda).',
};

function setup(role: string, argv: string[]): { config: Config; log: Logger } | null {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(HELP[role]);
    return null;
  }
  if (argv.length) throw new UsageError(`styleclip ${role} takes no arguments (configure it with environment variables; see docs/operations.md)`);
  loadDotenv({ quiet: true });
  const config = loadConfig();
  return { config, log: createLogger(config.logLevel, role) };
}

/**
 * Resolves on the first SIGTERM/SIGINT. Call it before logging "ready": a signal sent as soon as that line
 * appears must find the handler installed, or it kills the process without a shutdown.
 */
function untilSignal(log: Logger): Promise<string> {
  return new Promise((resolve) => {
    const on = (signal: string) => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      log.info({ signal }, 'shutting down: finishing running jobs');
      resolve(signal);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

/**
 * Runs the shutdown steps in order within `timeoutMs` (SHUTDOWN_TIMEOUT_MS). Past it (typically Redis
 * unreachable: BullMQ's close waits for it forever), or when a step fails (a close that finds the
 * connection gone), it logs the step and what is abandoned, calls `force` (drop the connections) and
 * exits the process with 1: hung closes leave handles and reconnect timers that would otherwise keep it
 * alive until the orchestrator kills it.
 */
async function boundedShutdown(
  log: Logger,
  timeoutMs: number,
  steps: [string, () => Promise<unknown> | unknown][],
  force: () => Promise<void>,
  abandoned: () => Record<string, unknown>,
): Promise<void> {
  let stage = 'starting';
  let failure: Error | null = null;
  const graceful = (async () => {
    for (const [name, step] of steps) {
      stage = name;
      await step();
    }
  })().catch((err: Error) => {
    failure = err;
  });
  const settled = await settlesWithin(graceful, timeoutMs);
  if (settled && !failure) return;
  const what = failure ? `failed while ${stage} (${(failure as Error).message})` : `still ${stage} after ${timeoutMs} ms`;
  log.warn({ timeoutMs, stage, ...abandoned() }, `shutdown ${what} (Redis unreachable?): abandoning the rest, dropping connections and exiting`);
  await settlesWithin(force(), 1000);
  process.exit(1);
}

type AdapterStart = (core: BotCore, env: NodeJS.ProcessEnv) => Promise<AdapterHandle>;

async function startAdapter(name: string, load: () => Promise<AdapterStart>, core: BotCore, log: Logger): Promise<AdapterHandle | null> {
  let start: AdapterStart;
  try {
    start = await load();
  } catch (err) {
    log.error({ adapter: name, err: (err as Error).message }, `${name} adapter is not available in this build`);
    return null;
  }
  const handle = await start(core, process.env);
  log.info({ adapter: name }, `${name} adapter started`);
  return handle;
}

async function serve(role: 'start' | 'bot', argv: string[]): Promise<number> {
  const ready = setup(role, argv);
  if (!ready) return 0;
  const { config, log } = ready;
  if (role === 'bot' && !config.redisUrl) log.warn('no REDIS_URL: running the worker in this process (embedded mode)');
  const bot = await createApp(appOptions(config, { worker: role === 'start' || !config.redisUrl, logger: log }));
  const adapters: AdapterHandle[] = [];
  try {
    if (config.discordToken) {
      const h = await startAdapter('discord', async () => (await import('../adapters/discord/index.ts')).startDiscordAdapter, bot, log);
      if (h) adapters.push(h);
    }
    if (config.slackBotToken) {
      const h = await startAdapter('slack', async () => (await import('../adapters/slack/index.ts')).startSlackAdapter, bot, log);
      if (h) adapters.push(h);
    }
  } catch (err) {
    await Promise.allSettled(adapters.map((a) => a.close()));
    await bot.close();
    throw err;
  }
  const pack = bot.packs.defaultPack;
  const untrainedNote = pack.untrained
    ? `Pack "${pack.name}" has untrained random weights (a demo): its images are noise-like. To install a real pack, see docs/operations.md ("Installing a real model pack").`
    : undefined;
  const playground =
    config.playground || (!config.discordToken && !config.slackBotToken)
      ? createPlayground(bot, { admins: config.playgroundAdmins, notice: untrainedNote })
      : null;
  const server = await startOpsServer({
    host: config.host,
    port: config.port,
    health: () => bot.health(role),
    metrics: async () => ({ contentType: bot.metrics.contentType, text: await bot.metricsText() }),
    routes: playground?.routes,
  }).catch(async (err: unknown) => {
    // e.g. PORT in use: without this the engine thread and connections would keep the process alive.
    await Promise.allSettled(adapters.map((a) => a.close()));
    playground?.close();
    await bot.close();
    throw err;
  });
  const signalled = untilSignal(log);
  log.info({ url: server.url, queue: config.redisUrl ? safeUrl(config.redisUrl) : 'in-process', pack: pack.name }, 'ready');
  if (playground) console.log(`StyleCLIP playground: ${server.url}  (post "/styleclip-help" to start; admins: ${config.playgroundAdmins.join(', ')})`);
  if (untrainedNote) console.log(untrainedNote);

  await signalled;
  await boundedShutdown(
    log,
    config.shutdownTimeoutMs,
    [
      ['closing the HTTP server', () => server.close()],
      // Running jobs finish and reach Discord/Slack before the adapters go (new commands are refused meanwhile).
      ['finishing running jobs', () => bot.drain()],
      ['closing the adapters', () => Promise.allSettled(adapters.map((a) => a.close()))],
      ['closing the playground', () => playground?.close()],
      ['closing the queue', () => bot.close()],
    ],
    () => bot.disconnect(),
    // With Redis, abandoned jobs rerun on another worker once their locks lapse (WORKER_LOCK_MS).
    () => bot.pending(),
  );
  log.info('stopped');
  return 0;
}

export const runStart = (argv: string[]) => serve('start', argv);
export const runBot = (argv: string[]) => serve('bot', argv);

export async function runWorker(argv: string[]): Promise<number> {
  const ready = setup('worker', argv);
  if (!ready) return 0;
  const { config, log } = ready;
  if (!config.redisUrl) {
    throw new ConfigError('REDIS_URL', 'the worker takes jobs from Redis; set it, or run `styleclip start` for the all-in-one mode');
  }
  const packs = new PackCatalog(config.packDir, config.packsDir, path.join(config.dataDir, 'mappers'));
  const metrics = new Metrics({ defaults: true });
  const store = RedisStore.connect(config.redisUrl, `${config.redisPrefix}:`);
  const redis = new RedisHealth({ log, metrics, boundMs: config.outageMs }).watch(store.connection);
  // Edits, and gradient jobs (optimize, mapper training) that this worker takes when it has PyTorch (src/jobs/lanes.ts).
  const queue = new LaneQueue(
    (lane) =>
      new BullQueue({
        redisUrl: config.redisUrl!,
        prefix: config.redisPrefix,
        events: false,
        onError: queueErrorLogger(log),
        tuning: queueTuning(config),
        name: LANE_QUEUE_NAMES[lane],
      }),
  );
  await Promise.all([queue.ready(), store.ready()]);
  const service = await startWorker({ ...config, queue, store, packs, metrics, log }).catch(async (err: unknown) => {
    // A pack the engine can't open: close what is open so the process exits with the error.
    await queue.close().catch(() => {});
    await store.close();
    throw err;
  });
  const server = await startOpsServer({
    host: config.host,
    port: config.port,
    // Redis away: 503 (the worker holds its running jobs meanwhile and takes no new ones).
    health: async () => ({
      ok: redis.up,
      role: 'worker',
      ...(redis.up ? {} : { status: 'redis down', redisDownForS: Math.round(redis.downForMs() / 1000) }),
      device: config.device,
      pack: packs.defaultPack.name,
      ...service.stats(),
      gradients: service.gradients(),
    }),
    metrics: async () => ({ contentType: metrics.contentType, text: await metrics.text() }),
  }).catch(async (err: unknown) => {
    await service.close();
    await queue.close();
    await store.close();
    throw err;
  });
  const signalled = untilSignal(log);
  log.info({ url: server.url, device: config.device, pack: packs.defaultPack.name, batch: config.batchSize }, 'worker ready');
  const throughput = setInterval(() => log.info(service.stats(), 'worker throughput'), 60_000);
  throughput.unref();

  await signalled;
  clearInterval(throughput);
  await boundedShutdown(
    log,
    config.shutdownTimeoutMs,
    [
      ['finishing running jobs', () => service.close()],
      ['closing the queue', () => queue.close()],
      ['closing the store', () => store.close()],
      ['closing the HTTP server', () => server.close()],
    ],
    async () => {
      queue.disconnect();
      await store.close();
    },
    // Their locks lapse after WORKER_LOCK_MS and another worker reruns them.
    () => ({ runningJobs: service.running(), ...service.stats() }),
  );
  log.info(service.stats(), 'worker stopped');
  return 0;
}
