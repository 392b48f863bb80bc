// Queue contract: the in-process queue and the BullMQ one must behave the same.
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryQueue } from '../src/jobs/memory-queue.ts';
import { BullQueue } from '../src/jobs/bull-queue.ts';
import type { JobQueue } from '../src/jobs/queue.ts';
import { PermanentJobError, PostponeJob, type EditJobData, type QueueEvent } from '../src/jobs/types.ts';
import { dropPrefix, uniquePrefix } from './helpers/core-bot.ts';
import { freePort, killRedisServer, startRedisServer } from './helpers/redis-server.ts';

const REDIS = 'redis://127.0.0.1:6379';
const tuning = { attempts: 3, backoffMs: 20, lockDurationMs: 5000, stalledIntervalMs: 5000 };

function job(id: string, user = 'u1'): EditJobData {
  return {
    jobId: id,
    platform: 'playground',
    scope: 'playground:s1',
    requesterId: user,
    target: { platform: 'playground', channelId: 'c' },
    pack: 'tiny',
    spec: { method: 'global', prompt: 'p', strength: 1 },
    source: { kind: 'seed', seed: 1 },
    submittedAt: Date.now(),
  };
}

function until(events: QueueEvent[], pred: (e: QueueEvent[]) => boolean, ms = 10_000) {
  return new Promise<void>((resolve, reject) => {
    const start = Date.now();
    const tick = () => {
      if (pred(events)) return resolve();
      if (Date.now() - start > ms) return reject(new Error(`timed out; events: ${JSON.stringify(events)}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

const prefixes: string[] = [];
const makers: [string, (t?: typeof tuning) => JobQueue][] = [
  ['memory', (t = tuning) => new MemoryQueue(t)],
  [
    'bullmq',
    (t = tuning) => {
      prefixes.push(uniquePrefix('jobs'));
      return new BullQueue({ redisUrl: REDIS, prefix: prefixes.at(-1), tuning: t });
    },
  ],
];

describe.each(makers)('%s queue', (_name, make) => {
  let queue: JobQueue;
  afterEach(async () => {
    await queue?.close();
    for (const prefix of prefixes.splice(0)) await dropPrefix(REDIS, prefix);
  });

  it('keeps waiting jobs in order with positions, ignores duplicate ids, and removes waiting jobs', async () => {
    queue = make();
    await queue.ready();
    await queue.add(job('j-a'));
    await queue.add(job('j-b'));
    await queue.add(job('j-a'));
    await queue.add(job('j-c'));
    let jobs = await queue.inFlight();
    expect(jobs.map((j) => [j.id, j.state, j.position])).toEqual([
      ['j-a', 'waiting', 1],
      ['j-b', 'waiting', 2],
      ['j-c', 'waiting', 3],
    ]);
    expect(await queue.removeWaiting('j-b')).toBe(true);
    expect(await queue.removeWaiting('nope')).toBe(false);
    jobs = await queue.inFlight();
    expect(jobs.map((j) => [j.id, j.position])).toEqual([
      ['j-a', 1],
      ['j-c', 2],
    ]);
  });

  it('orders waiting jobs by priority, then by arrival', async () => {
    queue = make();
    await queue.ready();
    await queue.add({ ...job('j-a2'), priority: 2 });
    await queue.add({ ...job('j-b1'), priority: 1 });
    await queue.add({ ...job('j-a3'), priority: 3 });
    await queue.add(job('j-c1')); // default 1
    await queue.add({ ...job('j-b2'), priority: 2 });
    expect((await queue.inFlight()).map((j) => [j.id, j.position])).toEqual([
      ['j-b1', 1],
      ['j-c1', 2],
      ['j-a2', 3],
      ['j-b2', 4],
      ['j-a3', 5],
    ]);
    const ran: string[] = [];
    const handle = queue.process(async (j) => {
      ran.push(j.id);
    }, 1);
    const start = Date.now();
    while (ran.length < 5 && Date.now() - start < 10_000) await new Promise((r) => setTimeout(r, 10));
    await handle.close();
    expect(ran).toEqual(['j-b1', 'j-c1', 'j-a2', 'j-b2', 'j-a3']);
  });

  it('runs jobs, reports progress, retries transient faults and fails permanent ones at once', async () => {
    queue = make();
    await queue.ready();
    const events: QueueEvent[] = [];
    queue.onEvent((e) => events.push(e));
    const attempts = new Map<string, number>();
    const handle = queue.process(async (j) => {
      attempts.set(j.id, j.attempt);
      await j.progress(50);
      if (j.id === 'j-flaky' && j.attempt < 2) throw new Error('hiccup');
      if (j.id === 'j-bad') throw new PermanentJobError('bad', 'no channel passes the threshold');
    }, 2);
    await queue.add(job('j-ok'));
    await queue.add(job('j-flaky'));
    await queue.add(job('j-bad'));
    await until(events, (es) => ['j-ok', 'j-flaky', 'j-bad'].every((id) => es.some((e) => e.jobId === id && (e.type === 'completed' || e.type === 'failed'))));
    const final = (id: string) => events.filter((e) => e.jobId === id && (e.type === 'completed' || e.type === 'failed'));
    expect(final('j-ok')).toEqual([{ type: 'completed', jobId: 'j-ok' }]);
    expect(final('j-flaky')).toEqual([{ type: 'completed', jobId: 'j-flaky' }]);
    expect(attempts.get('j-flaky')).toBe(2);
    expect(final('j-bad')).toEqual([{ type: 'failed', jobId: 'j-bad', reason: 'no channel passes the threshold' }]);
    expect(attempts.get('j-bad')).toBe(1);
    expect(events).toContainEqual({ type: 'progress', jobId: 'j-ok', progress: 50 });
    expect(events).toContainEqual({ type: 'active', jobId: 'j-ok' });
    await handle.close();
    expect(await queue.inFlight()).toEqual([]);
  });

  it('a postponed job goes back to the queue, still counts as waiting, and reruns later without using a try', async () => {
    queue = make();
    await queue.ready();
    const events: QueueEvent[] = [];
    queue.onEvent((e) => events.push(e));
    const runs: { attempt: number; at: number; startedAt: number }[] = [];
    let postponedAt = 0;
    let seenRunning: unknown;
    const handle = queue.process(async (j) => {
      runs.push({ attempt: j.attempt, at: Date.now(), startedAt: j.startedAt });
      seenRunning = (await queue.running()).map((r) => [r.id, r.state, r.startedAt]);
      if (runs.length === 1) {
        postponedAt = Date.now();
        throw new PostponeJob('its user is at the running cap', 300);
      }
    }, 1);
    await queue.add(job('j-later'));
    await until(events, () => postponedAt > 0 && runs.length === 1);
    await new Promise((r) => setTimeout(r, 50));
    expect((await queue.inFlight()).map((j) => [j.id, j.state])).toEqual([['j-later', 'waiting']]);
    await until(events, (es) => es.some((e) => e.type === 'completed'));
    expect(runs.map((r) => r.attempt)).toEqual([1, 1]);
    expect(runs[1].at - postponedAt).toBeGreaterThanOrEqual(250);
    expect(runs.every((r) => Math.abs(r.startedAt - r.at) < 1000)).toBe(true);
    expect(events.filter((e) => e.type === 'failed')).toEqual([]);
    expect(seenRunning).toEqual([['j-later', 'active', runs[1].startedAt]]);
    await handle.close();
  });

  it('a job waiting out a retry backoff still counts as waiting and can be removed', async () => {
    queue = make({ ...tuning, backoffMs: 60_000 });
    await queue.ready();
    const events: QueueEvent[] = [];
    queue.onEvent((e) => events.push(e));
    let runs = 0;
    const handle = queue.process(async () => {
      runs += 1;
      throw new Error('hiccup');
    }, 1);
    await queue.add(job('j-retry'));
    await until(events, (es) => es.some((e) => e.type === 'active'));
    // Wait for the failed try to reach its backoff, however slow the machine (no fixed sleep).
    const states = async () => (await queue.inFlight()).map((j) => [j.id, j.state]);
    for (let i = 0; i < 1000 && JSON.stringify(await states()) !== '[["j-retry","waiting"]]'; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await states()).toEqual([['j-retry', 'waiting']]);
    expect(await queue.removeWaiting('j-retry')).toBe(true);
    expect(await queue.inFlight()).toEqual([]);
    await handle.close();
    expect(runs).toBe(1);
  });

  it('close() on a processor waits for the running job to finish', async () => {
    queue = make();
    await queue.ready();
    let finished = false;
    let startedResolve!: () => void;
    const started = new Promise<void>((r) => (startedResolve = r));
    const handle = queue.process(async () => {
      startedResolve();
      await new Promise((r) => setTimeout(r, 200));
      finished = true;
    }, 1);
    await queue.add(job('j-long'));
    await started;
    await handle.close();
    expect(finished).toBe(true);
  });
});

describe('BullMQ connection errors', () => {
  it('reach onError (for the logs), each at most once a minute rather than on every reconnect', async () => {
    const errors: string[] = [];
    const prefix = uniquePrefix('errors');
    const queue = new BullQueue({ redisUrl: REDIS, prefix, onError: (err, source) => errors.push(`${source} ${err.message}`) });
    try {
      await queue.ready();
      // What ioredis emits while Redis is down, once per reconnect attempt.
      const inner = queue as unknown as { queue: { emit(e: string, err: Error): void }; events: { emit(e: string, err: Error): void } };
      for (let i = 0; i < 3; i++) inner.queue.emit('error', new Error('connect ECONNREFUSED 127.0.0.1:6379'));
      inner.events.emit('error', new Error('connect ECONNREFUSED 127.0.0.1:6379'));
      inner.queue.emit('error', new Error('NOAUTH Authentication required.'));
      expect(errors).toEqual(['queue connect ECONNREFUSED 127.0.0.1:6379', 'events connect ECONNREFUSED 127.0.0.1:6379', 'queue NOAUTH Authentication required.']);
    } finally {
      await queue.close();
      await dropPrefix(REDIS, prefix);
    }
  });
});

describe('BullMQ close while Redis is unreachable', () => {
  it('close() with a timeout still resolves: the graceful close is abandoned and the connections dropped', async () => {
    const port = await freePort(6390 + ((process.pid + 10) % 50));
    const redis = await startRedisServer(port);
    const queue = new BullQueue({ redisUrl: `redis://127.0.0.1:${port}`, prefix: 'closing', tuning, onError: () => {} });
    try {
      await queue.ready();
      let release!: () => void;
      const started = new Promise<void>((resolve) => {
        queue.process(async () => {
          resolve();
          await new Promise<void>((r) => (release = r));
        }, 1);
      });
      await queue.add(job('j1'));
      await started;
      await killRedisServer(redis);
      release(); // the job ends, but BullMQ cannot record it: a plain close() would wait for Redis forever
      await queue.close({ timeoutMs: 200 });
    } finally {
      await killRedisServer(redis);
    }
  }, 30_000);
});

describe('memory store', () => {
  it('expires keys, and over its size limit evicts the oldest expiring values but never settings', async () => {
    const { MemoryStore } = await import('../src/state/store.ts');
    const store = new MemoryStore(30);
    await store.set('settings', 'x'.repeat(10));
    await store.set('a', 'a'.repeat(10), 60);
    await store.set('b', 'b'.repeat(10), 60);
    await store.set('c', 'c'.repeat(10), 60);
    expect(await store.get('a')).toBeNull();
    expect((await store.get('b'))?.toString()).toBe('b'.repeat(10));
    expect(await store.get('settings')).not.toBeNull();
    expect(await store.setNX('b', 'other', 60)).toBe(false);
    await store.set('short', 'x', 0.001);
    await new Promise((r) => setTimeout(r, 5));
    expect(await store.get('short')).toBeNull();
    expect(await store.setNX('short', 'y', 60)).toBe(true);
    await store.close();
  });
});
