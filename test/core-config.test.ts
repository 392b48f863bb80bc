// Configuration from the environment (every error names its variable) and secret-free logs.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { createLogger, safeUrl } from '../src/log.ts';

describe('config', () => {
  it('has working defaults for a fresh clone', () => {
    const c = loadConfig({}, '/repo');
    expect(c).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      redisUrl: undefined,
      packDir: '/repo/models/packs/tiny',
      device: 'cpu',
      playground: false,
      batchSize: 1, // no batching on a CPU
      batchWindowMs: 5,
      redisPrefix: 'styleclip',
      lockMs: 30_000,
      shutdownTimeoutMs: 10_000,
      playgroundAdmins: ['admin'],
      optimize: 'auto',
      train: true,
      trainBudgetS: 4 * 3600,
    });
  });

  it('reads values and names the variable of any bad one', () => {
    const c = loadConfig({ PORT: '8080', REDIS_URL: 'redis://r:6379', STYLECLIP_DEVICE: 'CUDA', PLAYGROUND: 'yes', PLAYGROUND_ADMINS: 'ann, bo', SHUTDOWN_TIMEOUT_MS: '2500', STYLECLIP_TRAIN: 'off', TRAIN_BUDGET_S: '600' }, '/repo');
    expect(c).toMatchObject({ shutdownTimeoutMs: 2500, port: 8080, redisUrl: 'redis://r:6379', device: 'cuda', batchSize: 8, playground: true, playgroundAdmins: ['ann', 'bo'], train: false, trainBudgetS: 600 });
    const bad: [Record<string, string>, string][] = [
      [{ PORT: 'http' }, 'PORT: expected a whole number, got "http"'],
      [{ PORT: '70000' }, 'PORT: must be between 0 and 65535, got 70000'],
      [{ REDIS_URL: 'localhost:6379' }, 'REDIS_URL: expected a redis:// or rediss:// URL'],
      [{ STYLECLIP_DEVICE: 'tpu' }, 'STYLECLIP_DEVICE: expected cpu or cuda, got "tpu"'],
      [{ WORKER_BATCH_SIZE: '0' }, 'WORKER_BATCH_SIZE: must be between 1 and 256, got 0'],
      [{ WORKER_BATCH_WINDOW_MS: '-1' }, 'WORKER_BATCH_WINDOW_MS: expected a whole number, got "-1"'],
      [{ RESULT_TTL_S: 'forever' }, 'RESULT_TTL_S: expected a whole number, got "forever"'],
      [{ PLAYGROUND: 'maybe' }, 'PLAYGROUND: expected 1/0/true/false, got "maybe"'],
      [{ STYLECLIP_TRAIN: 'auto' }, 'STYLECLIP_TRAIN: expected 1/0/true/false, got "auto"'],
      [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent'],
      [{ SHUTDOWN_TIMEOUT_MS: '10s' }, 'SHUTDOWN_TIMEOUT_MS: expected a whole number, got "10s"'],
      [{ STYLECLIP_REDIS_PREFIX: 'a:b' }, 'STYLECLIP_REDIS_PREFIX: use 1–64 letters, digits, "_", "." or "-"'],
    ];
    for (const [env, message] of bad) expect(() => loadConfig(env, '/repo')).toThrow(message);
  });
});

describe('logs', () => {
  it('redact tokens and secrets, and Redis URLs lose their password', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const log = createLogger('info', 'test', sink);
    log.info({ token: 'xoxb-1', slack: { signingSecret: 's3cret', botToken: 'xoxb-2' }, user: 'alice' }, 'hello');
    const line = JSON.parse(lines[0]);
    expect(line).toMatchObject({ token: '[redacted]', slack: { signingSecret: '[redacted]', botToken: '[redacted]' }, user: 'alice', msg: 'hello' });
    expect(lines[0]).not.toMatch(/xoxb|s3cret/);
    expect(safeUrl('redis://user:hunter2@redis:6379/0')).toBe('redis://***:***@redis:6379/0');
    expect(safeUrl('redis://redis:6379')).toBe('redis://redis:6379');
  });
});
