// Redis faults cost no one their edit: a bot and a worker (separate connections, the fake engine at 150 ms a
// batch) on a redis-server of the test's own, stopped and restarted mid-run: cleanly with AOF, empty, and for
// longer than REDIS_OUTAGE_MS. Plus the watchdog alone on the shared Redis: jobs removed by hand or lost.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { makeJobId, UNAVAILABLE } from '../src/core/bot.ts';
import { delayedText, LOST_JOB } from '../src/core/watchdog.ts';
import { createLogger } from '../src/log.ts';
import type { App } from '../src/runtime/app.ts';
import { startOpsServer } from '../src/runtime/http.ts';
import { keys } from '../src/state/keys.ts';
import {
  collectUpdates,
  ctxFor,
  dropPrefix,
  makeTestBot,
  makeTestPack,
  spawnStyleclip,
  targetFor,
  tinyPackDir,
  uniquePrefix,
  waitExit,
} from './helpers/core-bot.ts';
import { freePort, killRedisServer, startRedisServer } from './helpers/redis-server.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000) {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A redis-server on a spare port with its own data folder, restartable on the same port. */
class OwnRedis {
  private server: ChildProcess | null = null;
  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  static async start(aof: boolean): Promise<OwnRedis> {
    const port = await freePort(6440 + (process.pid % 50));
    const redis = new OwnRedis(port, fs.mkdtempSync(path.join(os.tmpdir(), 'styleclip-faults-')));
    await redis.up(aof);
    return redis;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** `empty`: in a fresh folder, as a Redis that lost its data. */
  async up(aof: boolean, empty = false) {
    const dir = empty ? fs.mkdtempSync(path.join(this.dir, 'empty-')) : this.dir;
    const args = ['--appendonly', aof ? 'yes' : 'no', '--dir', dir, '--maxmemory-policy', 'noeviction'];
    this.server = await startRedisServer(this.port, args);
  }

  /** SIGTERM: a clean shutdown (AOF written); SIGKILL: a crash. */
  async down(signal: NodeJS.Signals) {
    if (this.server) await killRedisServer(this.server, signal);
  }

  async remove() {
    await this.down('SIGKILL');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A logger whose lines the test can read. */
function capturedLogger(name: string) {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const count = (msg: string) => lines.filter((l) => l.includes(`"msg":"${msg}`)).length;
  return { logger: createLogger('info', name, sink), lines, count };
}

/** `perUser` edits from each of `users` users, in turns; their job ids. */
async function burst(bot: App, users: number, perUser: number): Promise<string[]> {
  const ids: string[] = [];
  for (let round = 0; round < perUser; round++) {
    for (let u = 0; u < users; u++) {
      const ctx = ctxFor(`u${u}`);
      const reply = await bot.invoke('styleclip', { kind: 'text', text: `curly hair seed:${round * users + u}` }, ctx, targetFor(ctx));
      if (!reply.job) throw new Error(`not queued: ${reply.text}`);
      ids.push(reply.job.id);
    }
  }
  return ids;
}

const metric = (text: string, line: RegExp) => Number(line.exec(text)?.[1] ?? 0);

describe('a Redis outage mid-run (a bot and a worker on a redis-server of the test)', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) {
      const t = Date.now();
      await Promise.race([step().catch(() => {}), sleep(20_000)]);
      if (Date.now() - t > 15_000) console.error('cleanup step hung:', step.toString());
    }
  });

  async function setup(aof: boolean, outageMs = 60_000, watchdogMs = 500) {
    const redis = await OwnRedis.start(aof);
    cleanup.push(() => redis.remove());
    const pack = makeTestPack('testpack', { fakeEngine: { delayMs: 150 } }); // jobs take a while, as real ones
    cleanup.push(async () => fs.rmSync(pack, { recursive: true, force: true }));
    const prefix = uniquePrefix('faults');
    const botLog = capturedLogger('bot');
    const workerLog = capturedLogger('worker');
    const options = { redisUrl: redis.url, prefix, packDir: pack, outageMs };
    const worker = await makeTestBot({ ...options, worker: true, batchSize: 1, logger: workerLog.logger });
    cleanup.push(() => worker.close());
    const bot = await makeTestBot({ ...options, worker: false, watchdogMs, logger: botLog.logger });
    cleanup.push(() => bot.close());
    const updates = collectUpdates(bot);
    const finals = () => updates.finals();
    return { redis, bot, worker, updates, finals, botLog, workerLog };
  }

  /** Every job answered exactly once, with its image. */
  async function expectAllCompletedOnce(bot: App, updates: ReturnType<typeof collectUpdates>, ids: string[]) {
    await until('the bot to reconnect', () => bot.redis()?.up === true);
    for (const id of ids) {
      const done = await updates.final(id, 60_000);
      expect(done.status, `${id}: ${done.text}`).toBe('completed');
      expect(await bot.resultImage(id)).not.toBeNull();
    }
    await sleep(1000); // a duplicate would arrive now
    expect(updates.finals()).toHaveLength(ids.length);
    expect(new Set(updates.finals().map((u) => u.jobId)).size).toBe(ids.length);
  }

  it('a clean restart (AOF, ~4 s down) costs no edit: refused at once meanwhile, /healthz 503 then 200, logged once each way', async () => {
    const { redis, bot, worker, updates, finals, botLog, workerLog } = await setup(true);
    const ops = await startOpsServer({ host: '127.0.0.1', port: 0, health: () => bot.health('bot'), metrics: async () => ({ contentType: '', text: '' }) });
    cleanup.push(() => ops.close());
    const ids = await burst(bot, 12, 2);
    await until('the first results', () => finals().length >= 2);

    await redis.down('SIGTERM');
    const downAt = Date.now();
    await until('the bot to notice', () => bot.redis()?.up === false);
    expect(finals().length).toBeLessThan(ids.length); // stopped mid-run
    const ctx = ctxFor('late');
    expect(await bot.invoke('styleclip', { kind: 'text', text: 'smile' }, ctx, targetFor(ctx))).toMatchObject({ error: true, text: UNAVAILABLE });
    const down = await fetch(`${ops.url}/healthz`);
    expect(down.status).toBe(503);
    expect(await down.json()).toMatchObject({ ok: false, status: 'redis down' });
    await sleep(Math.max(0, 4000 - (Date.now() - downAt)));
    await redis.up(true);

    await expectAllCompletedOnce(bot, updates, ids);
    await until('the bot to reconnect', () => bot.redis()?.up === true);
    expect((await fetch(`${ops.url}/healthz`)).status).toBe(200);
    expect(await bot.store.get(keys.job(makeJobId(ctx.platform, ctx.requestId)))).toBeNull(); // the refused one: nothing half-queued

    const workerMetrics = await worker.metrics.text();
    expect(workerMetrics).not.toMatch(/styleclip_job_failures_total\{/); // no try spent
    expect(metric(workerMetrics, /styleclip_jobs_ridden_out_total\{outcome="finished"\} (\d+)/)).toBeGreaterThan(0);
    const botMetrics = await bot.metricsText();
    expect(botMetrics).toMatch(/styleclip_redis_outages_total 1\b/);
    expect(botMetrics).toMatch(/styleclip_refusals_total\{reason="redis_down"\} 1\b/);
    expect(botMetrics).not.toMatch(/styleclip_jobs_lost_total\{/);
    for (const log of [botLog, workerLog]) {
      expect(log.count('Redis is down')).toBe(1);
      expect(log.count('Redis is back')).toBe(1);
      expect(log.count('queue connection error')).toBe(0);
    }
  }, 120_000);

  it('a restart without its data: every waiting job is queued again (or its user told) within a minute, each answered once', async () => {
    const { redis, bot, worker, updates, finals } = await setup(false);
    const ids = await burst(bot, 12, 2);
    await until('the first results', () => finals().length >= 2);
    await redis.down('SIGKILL');
    const answeredBefore = finals().length;
    expect(answeredBefore).toBeLessThan(ids.length);
    await redis.up(false, true);

    for (const id of ids) {
      const done = await updates.final(id, 60_000);
      if (done.status !== 'completed') expect(done.text).toBe(LOST_JOB);
    }
    await sleep(1500); // a duplicate would arrive now (three sweeps)
    expect(finals()).toHaveLength(ids.length);
    expect(new Set(finals().map((u) => u.jobId)).size).toBe(ids.length);
    const botMetrics = await bot.metricsText();
    expect(metric(botMetrics, /styleclip_jobs_lost_total\{action="requeued"\} (\d+)/)).toBeGreaterThan(0);
    expect(updates.updates.some((u) => u.status === 'queued' && /again: the job queue lost it/.test(u.text))).toBe(true);
    expect(botMetrics).toMatch(/styleclip_jobs_awaited 0\b/);
    const workerMetrics = await worker.metrics.text();
    expect(workerMetrics).toMatch(/styleclip_redis_outages_total 1\b/);
    expect(workerMetrics).not.toMatch(/styleclip_job_failures_total\{/); // a job lost from the queue is no failed try
  }, 120_000);

  it('an outage past REDIS_OUTAGE_MS: waiting users are told their edit is delayed, running jobs go back with no try spent, nothing is lost', async () => {
    const { redis, bot, worker, updates, finals } = await setup(true, 1500, 600_000); // the notice is not left to a sweep
    const ids = await burst(bot, 12, 2);
    await until('the first results', () => finals().length >= 2);
    await redis.down('SIGTERM');
    const answered = new Set(finals().map((u) => u.jobId));
    const waiting = ids.filter((id) => !answered.has(id));

    const delayed = () => new Set(updates.updates.filter((u) => u.status === 'queued' && u.text.startsWith('⏳ Delayed')).map((u) => u.jobId));
    await until('the delay notices', () => waiting.every((id) => delayed().has(id)));
    expect(updates.updates.find((u) => u.text.startsWith('⏳'))?.text).toMatch(/^⏳ Delayed: the job queue has been unreachable for \d+ s/);
    expect(delayedText(2)).toContain('will run once it is back');
    const ctx = ctxFor('late');
    expect(await bot.invoke('styleclip', { kind: 'text', text: 'smile' }, ctx, targetFor(ctx))).toMatchObject({ error: true, text: UNAVAILABLE });
    // A ➕ or ❌ on a finished result meanwhile gets the same answer as a command.
    const done = finals()[0];
    expect(await bot.nudge(done.jobId, 'stronger', done.requesterId, 'outage-plus', done.target)).toMatchObject({ error: true, text: UNAVAILABLE });
    expect(await bot.cancel(done.jobId, done.requesterId, 'outage-x')).toMatchObject({ error: true, text: UNAVAILABLE });
    await sleep(2000); // well past the bound for the worker's running jobs too
    await redis.up(true);

    await expectAllCompletedOnce(bot, updates, ids);
    const workerMetrics = await worker.metrics.text();
    expect(workerMetrics).not.toMatch(/styleclip_job_failures_total\{/);
    expect(metric(workerMetrics, /styleclip_jobs_ridden_out_total\{outcome="handed_back"\} (\d+)/)).toBeGreaterThan(0);
  }, 120_000);
});

describe('a worker process while Redis is away', () => {
  it('answers /healthz 503 until Redis is back, then 200; logs the outage once each way', async () => {
    const redis = await OwnRedis.start(true);
    const worker = await spawnStyleclip('worker', { REDIS_URL: redis.url, STYLECLIP_PACK: tinyPackDir() });
    const health = async () => (await fetch(`${worker.url}/healthz`)).status;
    try {
      expect(await health()).toBe(200);
      await redis.down('SIGTERM');
      await until('a 503', async () => (await health()) === 503);
      await sleep(1500); // reconnect attempts meanwhile
      await redis.up(true);
      await until('a 200', async () => (await health()) === 200);
      const lines = (msg: string) => worker.output().split('\n').filter((l) => l.includes(`"msg":"${msg}`)).length;
      // The child's log line can reach us after its /healthz already answers 200.
      await until('the back line', () => lines('Redis is back') > 0);
      expect([lines('Redis is down'), lines('Redis is back'), lines('queue connection error')]).toEqual([1, 1, 0]);
    } finally {
      worker.kill('SIGKILL');
      await waitExit(worker);
      await redis.remove();
    }
  });
});

describe('the watchdog (shared Redis, no worker)', () => {
  const REDIS = 'redis://127.0.0.1:6379';

  it('a job removed by hand: its user is told; one lost with its record: queued again once, then told', async () => {
    const prefix = uniquePrefix('watchdog');
    const bot = await makeTestBot({ redisUrl: REDIS, prefix, worker: false, watchdogMs: 600_000 });
    const updates = collectUpdates(bot);
    try {
      const [removed, lost] = await burst(bot, 2, 1);
      const sweepTwice = async () => {
        await bot.sweepLostJobs(); // notices
        await bot.sweepLostJobs(); // judges
      };
      await sweepTwice();
      expect(updates.finals()).toEqual([]); // waiting jobs are left alone

      expect(await bot.queue.removeWaiting(removed)).toBe(true); // by hand: its record stays
      expect(await bot.queue.removeWaiting(lost)).toBe(true);
      await bot.store.del(keys.job(lost)); // as if Redis lost everything
      await sweepTwice();
      expect(updates.finals()).toMatchObject([{ jobId: removed, status: 'failed', text: LOST_JOB }]);
      expect(updates.updates.filter((u) => u.jobId === lost).map((u) => u.status)).toEqual(['queued']);
      expect((await bot.queue.inFlight()).map((j) => j.id)).toEqual([lost]);
      expect(await bot.store.get(keys.job(lost))).not.toBeNull();

      await bot.queue.removeWaiting(lost);
      await bot.store.del(keys.job(lost));
      await sweepTwice();
      expect(updates.finals().map((u) => [u.jobId, u.text])).toEqual([
        [removed, LOST_JOB],
        [lost, LOST_JOB],
      ]);
      await sweepTwice();
      expect(updates.finals()).toHaveLength(2);
      const text = await bot.metricsText();
      expect(text).toMatch(/styleclip_jobs_lost_total\{action="told"\} 2\b/);
      expect(text).toMatch(/styleclip_jobs_lost_total\{action="requeued"\} 1\b/);
      expect(text).toMatch(/styleclip_jobs_awaited 0\b/);
    } finally {
      await bot.close();
      await dropPrefix(REDIS, prefix);
    }
  });

  it('after a restart of the bot, its first sweep adopts the jobs in the queue: one removed by hand is still answered', async () => {
    const prefix = uniquePrefix('adopt');
    const first = await makeTestBot({ redisUrl: REDIS, prefix, worker: false, watchdogMs: 600_000 });
    collectUpdates(first);
    const [job] = await burst(first, 1, 1);
    await first.close();
    const bot = await makeTestBot({ redisUrl: REDIS, prefix, worker: false, watchdogMs: 600_000 });
    const updates = collectUpdates(bot);
    try {
      await bot.sweepLostJobs(); // adopts it
      expect(await bot.queue.removeWaiting(job)).toBe(true);
      await bot.sweepLostJobs();
      await bot.sweepLostJobs();
      expect(updates.finals()).toMatchObject([{ jobId: job, status: 'failed', text: LOST_JOB }]);
    } finally {
      await bot.close();
      await dropPrefix(REDIS, prefix);
    }
  });
});
