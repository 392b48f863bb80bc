// The worker: micro-batching, per-item failure isolation, and the Redis acceptance runs with real
// `styleclip worker` processes on the tiny pack (many users, a worker killed mid-run, Redis restarted).
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Batcher } from '../src/worker/batcher.ts';
import { createEngineExecutor, type EditExecutor, type ExecItem, type ExecOutcome } from '../src/worker/executor.ts';
import { UNAVAILABLE } from '../src/core/bot.ts';
import type { App } from '../src/runtime/app.ts';
import type { JobUpdate } from '../src/core/types.ts';
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

/** Child processes that a test or scenario started, killed when it ends. */
function childProcesses() {
  const list: ChildProcess[] = [];
  return {
    add<T extends ChildProcess>(child: T): T {
      list.push(child);
      return child;
    },
    async stop() {
      for (const c of list.splice(0)) {
        if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
        await waitExit(c);
      }
    },
  };
}

describe('with Redis and separate worker processes', () => {
  let pack: string;
  beforeAll(() => {
    pack = tinyPackDir();
  });
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

  describe('100 edits from 10 users on two workers', () => {
    const children = childProcesses();
    const prefix = uniquePrefix('w100');
    let bot: App;
    let jobs: Awaited<ReturnType<typeof submitMany>>;
    let dones: JobUpdate[];
    let finals: JobUpdate[];
    let stats: { jobs: number; meanBatch: number }[];
    beforeAll(async () => {
      const env = { REDIS_URL: REDIS, STYLECLIP_REDIS_PREFIX: prefix, STYLECLIP_PACK: pack, WORKER_BATCH_SIZE: '8' };
      const workers = [children.add(await spawnStyleclip('worker', env)), children.add(await spawnStyleclip('worker', env))];
      bot = await makeTestBot({ redisUrl: REDIS, prefix, worker: false, packDir: pack });
      const updates = collectUpdates(bot);
      jobs = await submitMany(bot, 10, 10);
      dones = [];
      for (const job of jobs) dones.push(await updates.final(job.id, 90_000));
      await sleep(300); // any duplicate would arrive now
      finals = updates.finals();
      stats = await Promise.all(workers.map(async (w) => (await fetch(`${w.url}/healthz`)).json()));
    });
    afterAll(async () => {
      await bot?.close();
      await dropPrefix(REDIS, prefix);
      await children.stop();
    });

    it('completes every job', () => {
      for (const done of dones) expect(done.status, done.text).toBe('completed');
    });

    it('gives every user exactly their results, at their messages', () => {
      jobs.forEach((job, i) => {
        expect(dones[i].requesterId).toBe(job.user);
        expect(dones[i].target.messageId).toBe(job.messageId);
      });
    });

    it('answers each job once', () => {
      expect(finals).toHaveLength(100);
      expect(new Set(finals.map((u) => u.jobId)).size).toBe(100);
    });

    it('makes each user’s first edit a different image', async () => {
      const images = await Promise.all(jobs.slice(0, 10).map((j) => bot.resultImage(j.id)));
      expect(new Set(images.map((i) => i!.bytes.toString('base64'))).size).toBe(10);
    });

    it('observes the latency of all 100 jobs', async () => {
      expect(await bot.metricsText()).toMatch(/styleclip_job_latency_seconds_count\{outcome="completed"\} 100/);
    });

    it('shares the jobs between both workers (their /healthz reports throughput)', () => {
      expect(stats.every((st) => st.jobs > 0)).toBe(true);
      expect(stats.reduce((n, st) => n + st.jobs, 0)).toBe(100);
    });

    it('runs the jobs in batches', () => {
      expect(Math.max(...stats.map((st) => st.meanBatch))).toBeGreaterThan(1);
    });
  });

  describe('worker restarts: SIGTERM, then SIGKILL mid-run, then a fresh worker', () => {
    const children = childProcesses();
    const prefix = uniquePrefix('wrestart');
    let bot: App;
    let jobs: Awaited<ReturnType<typeof submitMany>>;
    const afterSigterm = { exitCode: null as number | null, output: '', states: [] as string[], finals: [] as JobUpdate[] };
    const afterSigkill = { answered: 0, states: [] as string[] };
    let dones: JobUpdate[];
    let answeredAtEnd: number;
    beforeAll(async () => {
      const env = { REDIS_URL: REDIS, STYLECLIP_REDIS_PREFIX: prefix, STYLECLIP_PACK: pack, WORKER_BATCH_SIZE: '2', WORKER_LOCK_MS: '2000' };
      const first = children.add(await spawnStyleclip('worker', env));
      bot = await makeTestBot({ redisUrl: REDIS, prefix, worker: false, packDir: pack });
      const updates = collectUpdates(bot);
      const finished = async (n: number) => {
        while (updates.finals().length < n) await sleep(5);
      };
      const states = async () => (await bot.queue.inFlight()).map((j) => j.state);
      jobs = await submitMany(bot, 5, 8);

      await finished(2);
      first.kill('SIGTERM');
      afterSigterm.exitCode = await waitExit(first);
      afterSigterm.output = first.output();
      afterSigterm.states = await states();
      afterSigterm.finals = [...updates.finals()];

      const second = children.add(await spawnStyleclip('worker', env));
      await finished(updates.finals().length + 3);
      second.kill('SIGKILL');
      await waitExit(second);
      afterSigkill.answered = updates.finals().length;
      afterSigkill.states = await states();
      // The premise: killed mid-job, so its lock is orphaned.
      expect(afterSigkill.answered).toBeLessThan(jobs.length);
      expect(afterSigkill.states).toContain('active');

      children.add(await spawnStyleclip('worker', env));
      dones = [];
      for (const job of jobs) dones.push(await updates.final(job.id, 60_000));
      await sleep(500); // any duplicate would arrive now
      answeredAtEnd = updates.finals().length;
    });
    afterAll(async () => {
      await bot?.close();
      await dropPrefix(REDIS, prefix);
      await children.stop();
    });

    it('SIGTERM: the worker drains and exits 0', () => {
      expect(afterSigterm.exitCode).toBe(0);
      expect(afterSigterm.output).toMatch(/"msg":"worker stopped"/);
    });

    it('SIGTERM leaves nothing half-done: the jobs not yet run wait', () => {
      expect(afterSigterm.states.every((s) => s === 'waiting')).toBe(true);
    });

    it('SIGTERM: every job answered by then completed', () => {
      expect(afterSigterm.finals.every((u) => u.status === 'completed')).toBe(true);
    });

    it('after a SIGKILL mid-run, the next worker reruns the jobs: every job completes for its requester', () => {
      jobs.forEach((job, i) => {
        expect(dones[i].status, dones[i].text).toBe('completed');
        expect(dones[i].requesterId).toBe(job.user);
      });
    });

    it('answers each job once', () => {
      expect(answeredAtEnd).toBe(jobs.length);
    });
  });

  describe('SIGTERM while Redis is unreachable (SHUTDOWN_TIMEOUT_MS 300)', () => {
    const children = childProcesses();
    let worker: Awaited<ReturnType<typeof spawnStyleclip>>;
    let bot: Awaited<ReturnType<typeof spawnStyleclip>>;
    let exitCodes: (number | null)[];
    beforeAll(async () => {
      const port = await freePort(6390 + ((process.pid + 25) % 50));
      const redis = children.add(await startRedisServer(port));
      const env = { REDIS_URL: `redis://127.0.0.1:${port}`, STYLECLIP_PACK: pack, SHUTDOWN_TIMEOUT_MS: '300' };
      worker = children.add(await spawnStyleclip('worker', env));
      bot = children.add(await spawnStyleclip('bot', env));
      await killRedisServer(redis);
      worker.kill('SIGTERM');
      bot.kill('SIGTERM');
      exitCodes = [await waitExit(worker), await waitExit(bot)]; // without the grace period these would hang
    });
    afterAll(() => children.stop());

    it('the worker and the bot give up and exit with 1', () => {
      expect(exitCodes).toEqual([1, 1]);
    });

    it('each says that it abandons the rest', () => {
      // Stuck in a close, or a close that failed on the dead connection: either way it gives up and exits.
      for (const child of [worker, bot]) {
        expect(child.output()).toMatch(/"msg":"shutdown (still [^"]+ after 300 ms|failed while [^"]+) \(Redis unreachable\?\): abandoning the rest/);
      }
    });

    it('each says which running jobs it abandons', () => {
      for (const child of [worker, bot]) expect(child.output()).toMatch(/"runningJobs":\[\]/);
    });
  });

  describe('a Redis restart mid-run', () => {
    const children = childProcesses();
    let dir: string;
    let bot: App;
    let jobs: Awaited<ReturnType<typeof submitMany>>;
    let refused: Awaited<ReturnType<App['invoke']>>;
    let dones: JobUpdate[];
    let finals: JobUpdate[];
    beforeAll(async () => {
      const port = await freePort(6390 + (process.pid % 50));
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'styleclip-redis-'));
      const startRedis = async () => children.add(await startRedisServer(port, ['--appendonly', 'yes', '--dir', dir, '--maxmemory-policy', 'noeviction']));
      const redis = await startRedis();
      const url = `redis://127.0.0.1:${port}`;
      const env = { REDIS_URL: url, STYLECLIP_REDIS_PREFIX: 'styleclip', STYLECLIP_PACK: pack, WORKER_BATCH_SIZE: '2', WORKER_LOCK_MS: '2000' };
      children.add(await spawnStyleclip('worker', env));
      bot = await makeTestBot({ redisUrl: url, prefix: 'styleclip', worker: false, packDir: pack });
      const updates = collectUpdates(bot);
      jobs = await submitMany(bot, 4, 8);
      while (updates.finals().length < 3) await sleep(5);
      redis.kill('SIGTERM'); // a clean restart: AOF written on shutdown
      await waitExit(redis);
      expect(updates.finals().length).toBeLessThan(jobs.length); // the premise: restarted mid-run
      const ctx = ctxFor('late');
      refused = await bot.invoke('styleclip', { kind: 'text', text: 'smile' }, ctx, targetFor(ctx));
      await startRedis();
      dones = [];
      for (const job of jobs) dones.push(await updates.final(job.id, 60_000));
      finals = updates.finals();
    });
    afterAll(async () => {
      await bot?.close();
      fs.rmSync(dir, { recursive: true, force: true });
      await children.stop();
    });

    it('refuses new edits while Redis is down, saying so', () => {
      expect(refused).toMatchObject({ error: true, text: UNAVAILABLE });
    });

    it('ends every job; one that fails says why', () => {
      for (const done of dones) if (done.status !== 'completed') expect(done.text).toMatch(/^Edit failed: .+/);
    });

    it('completes most jobs', () => {
      expect(finals.filter((u) => u.status === 'completed').length).toBeGreaterThan(jobs.length / 2);
    });

    it('answers each job once', () => {
      expect(new Set(finals.map((u) => u.jobId)).size).toBe(finals.length);
    });
  });
});
