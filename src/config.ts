// Configuration from the environment (dotenv is loaded by the runtime). Every problem names its variable.
import path from 'node:path';
import { defaultBatchSize } from './worker/batcher.ts';
import type { OptimizeMode } from './worker/optimizer.ts';

export interface Config {
  port: number;
  host: string;
  redisUrl: string | undefined;
  packDir: string;
  packsDir: string | undefined;
  /**
   * STYLECLIP_DATA_DIR (default `.data`): files the deployment writes. Servers' own mappers live in
   * `<dataDir>/mappers/<scope>/<pack>/`; bot and workers must see the same folder.
   */
  dataDir: string;
  device: 'cpu' | 'cuda';
  playground: boolean;
  logLevel: string;
  batchSize: number;
  batchWindowMs: number;
  resultTtlS: number;
  /**
   * REDIS_OUTAGE_MS: how long a Redis outage is ridden out. Workers hold running jobs and retry their writes
   * this long (then hand them back to the queue, no try spent); past it the bot tells users whose jobs are
   * waiting that their edit is delayed until Redis is back.
   */
  outageMs: number;
  /** WATCHDOG_SWEEP_MS: how often the bot checks that the jobs it awaits still exist in the queue. */
  watchdogMs: number;
  /** Redis key prefix for state and BullMQ (STYLECLIP_REDIS_PREFIX), so several deployments can share a Redis. */
  redisPrefix: string;
  /** BullMQ job lock (WORKER_LOCK_MS): a worker silent this long is presumed dead and its jobs rerun elsewhere. */
  lockMs: number;
  /**
   * Grace period of a shutdown (SHUTDOWN_TIMEOUT_MS): past it, running jobs and replies are abandoned and the
   * connections are dropped, so a SIGTERM ends the process even while Redis is unreachable.
   */
  shutdownTimeoutMs: number;
  /** Users who are admins in the playground (PLAYGROUND_ADMINS, comma-separated). */
  playgroundAdmins: string[];
  discordToken: string | undefined;
  slackBotToken: string | undefined;
  /** STYLECLIP_OPTIMIZE. */
  optimize: OptimizeMode;
  /** OPTIMIZE_BUDGET_S: longest an optimize job may run on a worker. */
  optimizeBudgetS: number;
  /** TRAIN_BUDGET_S: longest a mapper training may run on a worker. */
  trainBudgetS: number;
  /** STYLECLIP_TRAIN (default on): whether a worker that takes optimize jobs also takes mapper trainings. */
  train: boolean;
}

export class ConfigError extends Error {
  constructor(
    public readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `expected a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function flag(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (!raw) return false;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(name, `expected 1/0/true/false, got "${env[name]}"`);
}

function nonEmpty(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const raw = env[name]?.trim();
  return raw ? raw : undefined;
}

function prefix(env: NodeJS.ProcessEnv): string {
  const value = nonEmpty(env, 'STYLECLIP_REDIS_PREFIX') ?? 'styleclip';
  if (!/^[\w.-]{1,64}$/.test(value)) throw new ConfigError('STYLECLIP_REDIS_PREFIX', 'use 1–64 letters, digits, "_", "." or "-"');
  return value;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, root = process.cwd()): Config {
  const redisUrl = nonEmpty(env, 'REDIS_URL');
  if (redisUrl && !/^rediss?:\/\//.test(redisUrl)) {
    throw new ConfigError('REDIS_URL', 'expected a redis:// or rediss:// URL');
  }
  const device = (nonEmpty(env, 'STYLECLIP_DEVICE') ?? 'cpu').toLowerCase();
  if (device !== 'cpu' && device !== 'cuda') throw new ConfigError('STYLECLIP_DEVICE', `expected cpu or cuda, got "${device}"`);
  const logLevel = (nonEmpty(env, 'LOG_LEVEL') ?? 'info').toLowerCase();
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError('LOG_LEVEL', `expected one of ${LOG_LEVELS.join(', ')}`);
  const packsDir = nonEmpty(env, 'STYLECLIP_PACKS_DIR');
  const optimize = (nonEmpty(env, 'STYLECLIP_OPTIMIZE') ?? 'auto').toLowerCase();
  if (!['auto', 'on', 'off'].includes(optimize)) throw new ConfigError('STYLECLIP_OPTIMIZE', `expected auto, on or off, got "${optimize}"`);
  return {
    port: int(env, 'PORT', 3000, 0, 65535),
    host: nonEmpty(env, 'HOST') ?? '127.0.0.1',
    redisUrl,
    packDir: path.resolve(root, nonEmpty(env, 'STYLECLIP_PACK') ?? 'models/packs/tiny'),
    packsDir: packsDir ? path.resolve(root, packsDir) : undefined,
    dataDir: path.resolve(root, nonEmpty(env, 'STYLECLIP_DATA_DIR') ?? '.data'),
    device,
    playground: flag(env, 'PLAYGROUND'),
    logLevel,
    batchSize: int(env, 'WORKER_BATCH_SIZE', defaultBatchSize(device), 1, 256),
    batchWindowMs: int(env, 'WORKER_BATCH_WINDOW_MS', 5, 0, 10_000),
    resultTtlS: int(env, 'RESULT_TTL_S', 7 * 24 * 3600, 60, 365 * 24 * 3600),
    outageMs: int(env, 'REDIS_OUTAGE_MS', 60_000, 1000, 3_600_000),
    watchdogMs: int(env, 'WATCHDOG_SWEEP_MS', 15_000, 100, 600_000),
    redisPrefix: prefix(env),
    lockMs: int(env, 'WORKER_LOCK_MS', 30_000, 1000, 3_600_000),
    shutdownTimeoutMs: int(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 0, 3_600_000),
    playgroundAdmins: (nonEmpty(env, 'PLAYGROUND_ADMINS') ?? 'admin')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    discordToken: nonEmpty(env, 'DISCORD_TOKEN'),
    slackBotToken: nonEmpty(env, 'SLACK_BOT_TOKEN'),
    optimize: optimize as OptimizeMode,
    optimizeBudgetS: int(env, 'OPTIMIZE_BUDGET_S', 600, 1, 24 * 3600),
    trainBudgetS: int(env, 'TRAIN_BUDGET_S', 4 * 3600, 1, 7 * 24 * 3600),
    train: env.STYLECLIP_TRAIN?.trim() ? flag(env, 'STYLECLIP_TRAIN') : true,
  };
}
