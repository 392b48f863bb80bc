// The worker: micro-batching, per-item failure isolation, and the Redis acceptance runs with real
// `styleclip worker` processes on the tiny pack (many users, a worker killed mid-run, Redis restarted).
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Batcher } from '../src/worker/batcher.ts';
import { createEngineExecutor, type EditExecutor, type ExecItem, type ExecOutcome } from '../src/worker/executor.ts';
import { UNAVAILABLE } from '../src/core/bot.ts';
import type { App } from '../src/runtime/app.ts';
import { calls, openPack as fakeOpenPack } from './helpers/core-fake-engine.ts';
import { freePort, killRedisServer, startRedisServer } from './helpers/redis-server.ts';
import { collectUpdates, ctxFor, dropPrefix, makeTestBot, makeTestPack, spawnStyleclip, targetFor, tinyPackDir, uniquePrefix, waitExit } from './helpers/core-bot.ts';

const REDIS = 'redis://127.0.0.1:6379';

const item = (packDir: string, prompt = 'smile'): ExecItem => ({ packDir, spec: { method: 'global', prompt, strength: 1 }, seed: 1 });

function recordingExecutor(delayMs = 0) {
  const batches: { pack: string; size: number }[] = [];
  const executor: EditExecutor = {
    async run(items) {
      batches.push({ pack: items[0].packDir, size: items.length });
      await new Promise((r) => setTimeout(r, delayMs));
      return items.map(() => ({ ok: false, code: 'stub', message: 'stub', permanent: true }) as ExecOutcome);
    },
    async warm() {},
    async close() {},
  };
  return { executor, batches };
}

describe('micro-batching: six jobs for pack a and one for b, then three late ones for a while the engine is busy (batch size 4)', () => {
  let batches: { pack: string; size: number }[];
  let batcher: Batcher;
  beforeAll(async () => {
    const recording = recordingExecutor(50);
    batches = recording.batches;
    batcher = new Batcher(recording.executor, 4, 5);
    const first = Array.from({ length: 6 }, () => batcher.submit(item('a')));
    const other = batcher.submit(item('b'));
    await new Promise((r) => setTimeout(r, 20)); // engine busy with the first batch
    const late = Array.from({ length: 3 }, () => batcher.submit(item('a')));
    await Promise.all([...first, other, ...late]);
  });

  it('fills a batch with one pack’s jobs, up to the batch size', () => {
    expect(batches[0]).toEqual({ pack: 'a', size: 4 });
  });

  it('adds the jobs that arrive while the engine is busy to the pack’s next batch', () => {
    expect(batches[1]).toEqual({ pack: 'a', size: 4 }); // a's two left over and two of the late ones
  });

  it('lets packs take turns: b, waiting since before the late jobs, goes before a’s rest', () => {
    expect(batches.slice(2)).toEqual([
      { pack: 'b', size: 1 },
      { pack: 'a', size: 1 },
    ]);
  });

  it('counts its batches and items', () => {
    expect(batcher.stats).toEqual({ batches: 4, items: 10 });
  });
});

it('a batch size of 1 turns batching off', async () => {
  const { executor, batches } = recordingExecutor();
  const batcher = new Batcher(executor, 1, 5);
  await Promise.all(Array.from({ length: 3 }, () => batcher.submit(item('a'))));
  expect(batches.map((b) => b.size)).toEqual([1, 1, 1]);
});

describe('the engine executor, given a batch with one bad edit', () => {
  const executor = createEngineExecutor(fakeOpenPack);
  let outcomes: ExecOutcome[];
  let renders: number[];
  beforeAll(async () => {
    const pack = makeTestPack('testpack', { fakeEngine: { noChannelsFor: ['frown'] } });
    calls.batches.length = 0;
    outcomes = await executor.run([item(pack, 'smile'), item(pack, 'frown'), item(pack, 'grin')]);
    renders = [...calls.batches];
  });
  afterAll(() => executor.close());

  it('fails the bad edit alone, permanently', () => {
    expect(outcomes.map((o) => o.ok)).toEqual([true, false, true]);
    expect(outcomes[1]).toMatchObject({ ok: false, code: 'no_channels', permanent: true });
  });

  it('renders the rest of the batch in one synthesis call', () => {
    expect(renders).toEqual([2]);
  });

  it('returns a PNG with its resolution, the batch size and whether the pack is untrained', () => {
    const ok = outcomes[0] as Extract<ExecOutcome, { ok: true }>;
    expect(ok.png.subarray(1, 4).toString()).toBe('PNG');
    expect(ok).toMatchObject({ resolution: 8, batchSize: 3, untrained: true });
  });

  it('fails the jobs of a pack it cannot open, permanently, with the engine’s reason', async () => {
    const broken = await executor.run([item(makeTestPack('testpack', { fakeEngine: { openFails: true } }))]);
    expect(broken[0]).toMatchObject({ ok: false, permanent: true, message: expect.stringMatching(/broken/) });
  });
});

describe('with Redis and separate worker processes', () => {
  let pack: string;
  const children: ChildProcess[] = [];
  beforeAll(() => {
    pack = tinyPackDir();
  });
  afterEach(async () => {
    for (const c of children.splice(0)) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await waitExit(c);
    }
  });

  async function submitMany(bot: App, users: number, perUser: number) {
    const jobs: { id: string; user: string; messageId: string }[] = [];
    for (let k = 0; k < perUser; k++) {
      for (let u = 0; u < users; u++) {
        const ctx = ctxFor(`user${u}`);
        const prompt = ['smiling face', 'blue eyes'][k % 2];
        const reply = await bot.invoke('styleclip', { kind: 'text', text: `${prompt} seed:${u * 100 + k}` }, ctx, targetFor(ctx));
        expect(reply.job, reply.text).toBeTruthy();
        jobs.push({ id: reply.job!.id, user: ctx.user.id, messageId: targetFor(ctx).messageId! });
      }
    }
    return jobs;
  }

  it('a worker whose pack the engine cannot open exits with the reason instead of hanging on its connections', async () => {
    const broken = fs.mkdtempSync(path.join(os.tmpdir(), 'styleclip-broken-'));
    fs.copyFileSync(path.join(pack, 'pack.json'), path.join(broken, 'pack.json')); // no graphs
    const env = { REDIS_URL: REDIS, STYLECLIP_REDIS_PREFIX: uniquePrefix('wbroken'), STYLECLIP_PACK: broken };
    try {
      await expect(spawnStyleclip('worker', env)).rejects.toThrow(/exited with 1:[\s\S]*missing mapping file/);
    } finally {
      fs.rmSync(broken, { recursive: true, force: true });
      await dropPrefix(REDIS, env.STYLECLIP_REDIS_PREFIX);
    }
  });

  it('100 edits from 10 users on two workers: every user gets exactly their results, once', async () => {
    const prefix = uniquePrefix('w100');
    const env = { REDIS_URL: REDIS, STYLECLIP_REDIS_PREFIX: prefix, STYLECLIP_PACK: pack, WORKER_BATCH_SIZE: '8' };
    const workers = [await spawnStyleclip('worker', env), await spawnStyleclip('worker', env)];
    children.push(...workers);
    const bot = await makeTestBot({ redisUrl: REDIS, prefix, worker: false, packDir: pack });
    const updates = collectUpdates(bot);
    try {
      const jobs = await submitMany(bot, 10, 10);
      for (const job of jobs) {
        const done = await updates.final(job.id, 90_000);
        expect(done.status, done.text).toBe('completed');
        expect(done.requesterId).toBe(job.user);
        expect(done.target.messageId).toBe(job.messageId);
      }
      await new Promise((r) => setTimeout(r, 300)); // any duplicate would arrive now
      const finals = updates.finals();
      expect(finals).toHaveLength(100);
      expect(new Set(finals.map((u) => u.jobId)).size).toBe(100);
      const images = await Promise.all(jobs.slice(0, 10).map((j) => bot.resultImage(j.id)));
      expect(new Set(images.map((i) => i!.bytes.toString('base64'))).size).toBe(10);
      const text = await bot.metricsText();
      expect(text).toMatch(/styleclip_job_latency_seconds_count\{outcome="completed"\} 100/);
      // Both workers took part, in batches (their /healthz reports throughput).
      const stats = await Promise.all(workers.map(async (w) => (await fetch(`${w.url}/healthz`)).json()));
      expect(stats.every((st) => st.jobs > 0)).toBe(true);
      expect(stats.reduce((n, st) => n + st.jobs, 0)).toBe(100);
      expect(Math.max(...stats.map((st) => st.meanBatch))).toBeGreaterThan(1);
    } finally {
      await bot.close();
      await dropPrefix(REDIS, prefix);
    }
  });

  it('worker restarts lose nothing: SIGTERM drains and exits 0; after a SIGKILL mid-run the next worker reruns the jobs; each answered once', async () => {
    const prefix = uniquePrefix('wrestart');
    const env = { REDIS_URL: REDIS, STYLECLIP_REDIS_PREFIX: prefix, STYLECLIP_PACK: pack, WORKER_BATCH_SIZE: '2', WORKER_LOCK_MS: '2000' };
    const first = await spawnStyleclip('worker', env);
    children.push(first);
    const bot = await makeTestBot({ redisUrl: REDIS, prefix, worker: false, packDir: pack });
    const updates = collectUpdates(bot);
    const finished = async (n: number) => {
      while (updates.finals().length < n) await new Promise((r) => setTimeout(r, 5));
    };
    try {
      const jobs = await submitMany(bot, 5, 8);

      await finished(2);
      first.kill('SIGTERM');
      expect(await waitExit(first)).toBe(0);
      expect(first.output()).toMatch(/"msg":"worker stopped"/);
      expect((await bot.queue.inFlight()).every((j) => j.state === 'waiting')).toBe(true); // nothing left half-done
      expect(updates.finals().every((u) => u.status === 'completed')).toBe(true);

      const second = await spawnStyleclip('worker', env);
      children.push(second);
      await finished(updates.finals().length + 3);
      second.kill('SIGKILL');
      await waitExit(second);
      expect(updates.finals().length).toBeLessThan(jobs.length);
      expect((await bot.queue.inFlight()).some((j) => j.state === 'active')).toBe(true); // killed mid-job: its lock is orphaned

      children.push(await spawnStyleclip('worker', env));
      for (const job of jobs) {
        const done = await updates.final(job.id, 60_000);
        expect(done.status, done.text).toBe('completed');
        expect(done.requesterId).toBe(job.user);
      }
      await new Promise((r) => setTimeout(r, 500)); // any duplicate would arrive now
      expect(updates.finals()).toHaveLength(jobs.length);
    } finally {
      await bot.close();
      await dropPrefix(REDIS, prefix);
    }
  });

  it('SIGTERM while Redis is unreachable: worker and bot give up after SHUTDOWN_TIMEOUT_MS, say what they abandon, and exit', async () => {
    const port = await freePort(6390 + ((process.pid + 25) % 50));
    const redis = await startRedisServer(port);
    children.push(redis);
    const env = { REDIS_URL: `redis://127.0.0.1:${port}`, STYLECLIP_PACK: pack, SHUTDOWN_TIMEOUT_MS: '300' };
    const worker = await spawnStyleclip('worker', env);
    children.push(worker);
    const bot = await spawnStyleclip('bot', env);
    children.push(bot);
    await killRedisServer(redis);
    worker.kill('SIGTERM');
    bot.kill('SIGTERM');
    // Without the grace period these would hang until the test timeout.
    expect(await waitExit(worker)).toBe(1);
    expect(await waitExit(bot)).toBe(1);
    for (const child of [worker, bot]) {
      // Stuck in a close, or a close that failed on the dead connection: either way it gives up and exits.
      expect(child.output()).toMatch(/"msg":"shutdown (still [^"]+ after 300 ms|failed while [^"]+) \(Redis unreachable\?\): abandoning the rest/);
      expect(child.output()).toMatch(/"runningJobs":\[\]/);
    }
  }, 60_000);

  it('survives a Redis restart: jobs resume or fail with a clear message, none vanish', async () => {
    const port = await freePort(6390 + (process.pid % 50));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'styleclip-redis-'));
    const startRedis = async () => {
      const server = await startRedisServer(port, ['--appendonly', 'yes', '--dir', dir, '--maxmemory-policy', 'noeviction']);
      children.push(server);
      return server;
    };
    let redis = await startRedis();
    const url = `redis://127.0.0.1:${port}`;
    const env = { REDIS_URL: url, STYLECLIP_REDIS_PREFIX: 'styleclip', STYLECLIP_PACK: pack, WORKER_BATCH_SIZE: '2', WORKER_LOCK_MS: '2000' };
    children.push(await spawnStyleclip('worker', env));
    const bot = await makeTestBot({ redisUrl: url, prefix: 'styleclip', worker: false, packDir: pack });
    const updates = collectUpdates(bot);
    try {
      const jobs = await submitMany(bot, 4, 8);
      while (updates.finals().length < 3) await new Promise((r) => setTimeout(r, 5));
      redis.kill('SIGTERM'); // a clean restart: AOF written on shutdown
      await waitExit(redis);
      expect(updates.finals().length).toBeLessThan(jobs.length); // restarted mid-run
      const ctx = ctxFor('late');
      const refused = await bot.invoke('styleclip', { kind: 'text', text: 'smile' }, ctx, targetFor(ctx));
      expect(refused).toMatchObject({ error: true, text: UNAVAILABLE });
      redis = await startRedis();
      for (const job of jobs) {
        const done = await updates.final(job.id, 60_000);
        if (done.status !== 'completed') expect(done.text).toMatch(/^Edit failed: .+/);
      }
      expect(updates.finals().filter((u) => u.status === 'completed').length).toBeGreaterThan(jobs.length / 2);
      expect(new Set(updates.finals().map((u) => u.jobId)).size).toBe(updates.finals().length);
    } finally {
      await bot.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
