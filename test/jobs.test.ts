// Queue contract: the in-process queue and the BullMQ one must behave the same.
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
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

/** Redis key prefixes of the BullMQ queues, dropped when the queue is closed. */
const prefixOf = new Map<JobQueue, string>();
const makers: [string, (t?: typeof tuning) => JobQueue][] = [
  ['memory', (t = tuning) => new MemoryQueue(t)],
  [
    'bullmq',
    (t = tuning) => {
      const prefix = uniquePrefix('jobs');
      const queue = new BullQueue({ redisUrl: REDIS, prefix, tuning: t });
      prefixOf.set(queue, prefix);
      return queue;
    },
  ],
];

async function closeQueue(queue: JobQueue) {
  await queue.close();
  const prefix = prefixOf.get(queue);
  if (prefix) await dropPrefix(REDIS, prefix);
}

describe.each(makers)('%s queue', (_name, make) => {
  /** A ready queue, closed when the test ends. */
  async function open(t = tuning): Promise<JobQueue> {
    const queue = make(t);
    onTestFinished(() => closeQueue(queue));
    await queue.ready();
    return queue;
  }
  /** A ready queue holding waiting jobs with these ids, added in order. */
  async function withWaiting(...ids: string[]): Promise<JobQueue> {
    const queue = await open();
    for (const id of ids) await queue.add(job(id));
    return queue;
  }
  /** The queue of a describe's scenario (`.queue`, ready in its beforeAll) and the events it reported; closed after the describe. */
  function scenarioQueue(t = tuning) {
    const scenario = { queue: undefined as unknown as JobQueue, events: [] as QueueEvent[] };
    beforeAll(async () => {
      scenario.queue = make(t);
      await scenario.queue.ready();
      scenario.queue.onEvent((e) => scenario.events.push(e));
    });
    afterAll(() => closeQueue(scenario.queue));
    return scenario;
  }
  const positions = async (queue: JobQueue) => (await queue.inFlight()).map((j) => [j.id, j.position]);

  it('keeps waiting jobs in order of arrival, with their positions', async () => {
    const queue = await withWaiting('j-a', 'j-b', 'j-c');
    expect((await queue.inFlight()).map((j) => [j.id, j.state, j.position])).toEqual([
      ['j-a', 'waiting', 1],
      ['j-b', 'waiting', 2],
      ['j-c', 'waiting', 3],
    ]);
  });

  it('ignores a job whose id it already has', async () => {
    const queue = await withWaiting('j-a', 'j-b', 'j-a', 'j-c');
    expect(await positions(queue)).toEqual([
      ['j-a', 1],
      ['j-b', 2],
      ['j-c', 3],
    ]);
  });

  it('removes a waiting job; the jobs behind it move up', async () => {
    const queue = await withWaiting('j-a', 'j-b', 'j-c');
    expect(await queue.removeWaiting('j-b')).toBe(true);
    expect(await positions(queue)).toEqual([
      ['j-a', 1],
      ['j-c', 2],
    ]);
  });

  it('says when there is no such waiting job to remove', async () => {
    const queue = await withWaiting('j-a');
    expect(await queue.removeWaiting('nope')).toBe(false);
  });

  it('orders waiting jobs by priority, then by arrival', async () => {
    const queue = await open();
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

  describe('running three jobs: one fine, one with a transient fault on its first try, one with a permanent fault', () => {
    const scenario = scenarioQueue();
    const { events } = scenario;
    const attempts = new Map<string, number>();
    let inFlightAfter: unknown;
    beforeAll(async () => {
      const { queue } = scenario;
      const handle = queue.process(async (j) => {
        attempts.set(j.id, j.attempt);
        await j.progress(50);
        if (j.id === 'j-flaky' && j.attempt < 2) throw new Error('hiccup');
        if (j.id === 'j-bad') throw new PermanentJobError('bad', 'no channel passes the threshold');
      }, 2);
      for (const id of ['j-ok', 'j-flaky', 'j-bad']) await queue.add(job(id));
      await until(events, (es) => ['j-ok', 'j-flaky', 'j-bad'].every((id) => es.some((e) => e.jobId === id && (e.type === 'completed' || e.type === 'failed'))));
      await handle.close();
      inFlightAfter = await queue.inFlight();
    });
    const final = (id: string) => events.filter((e) => e.jobId === id && (e.type === 'completed' || e.type === 'failed'));

    it('reports a job active, then its progress', () => {
      expect(events).toContainEqual({ type: 'active', jobId: 'j-ok' });
      expect(events).toContainEqual({ type: 'progress', jobId: 'j-ok', progress: 50 });
    });

    it('completes a job once', () => {
      expect(final('j-ok')).toEqual([{ type: 'completed', jobId: 'j-ok' }]);
    });

    it('retries a transient fault: the second try completes', () => {
      expect(final('j-flaky')).toEqual([{ type: 'completed', jobId: 'j-flaky' }]);
      expect(attempts.get('j-flaky')).toBe(2);
    });

    it('fails a permanent fault at once, with its reason', () => {
      expect(final('j-bad')).toEqual([{ type: 'failed', jobId: 'j-bad', reason: 'no channel passes the threshold' }]);
      expect(attempts.get('j-bad')).toBe(1);
    });

    it('keeps nothing in flight once the jobs are done', () => {
      expect(inFlightAfter).toEqual([]);
    });
  });

  describe('a job postponed once (PostponeJob, 300 ms)', () => {
    const scenario = scenarioQueue();
    const { events } = scenario;
    const runs: { attempt: number; at: number; startedAt: number }[] = [];
    let postponedAt = 0;
    let seenRunning: unknown;
    let whilePostponed: unknown;
    beforeAll(async () => {
      const { queue } = scenario;
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
      whilePostponed = (await queue.inFlight()).map((j) => [j.id, j.state]);
      await until(events, (es) => es.some((e) => e.type === 'completed'));
      await handle.close();
    });

    it('goes back to the queue and counts as waiting', () => {
      expect(whilePostponed).toEqual([['j-later', 'waiting']]);
    });

    it('reruns after its delay', () => {
      expect(runs[1].at - postponedAt).toBeGreaterThanOrEqual(250);
    });

    it('uses no try, and does not fail', () => {
      expect(runs.map((r) => r.attempt)).toEqual([1, 1]);
      expect(events.filter((e) => e.type === 'failed')).toEqual([]);
    });

    it('starts afresh on each run: its start time is the run’s', () => {
      expect(runs.every((r) => Math.abs(r.startedAt - r.at) < 1000)).toBe(true);
      expect(seenRunning).toEqual([['j-later', 'active', runs[1].startedAt]]);
    });
  });

  describe('a job waiting out a retry backoff', () => {
    const scenario = scenarioQueue({ ...tuning, backoffMs: 60_000 });
    const { events } = scenario;
    let runs = 0;
    let states: unknown;
    let removed: boolean;
    let inFlightAfter: unknown;
    beforeAll(async () => {
      const { queue } = scenario;
      const handle = queue.process(async () => {
        runs += 1;
        throw new Error('hiccup');
      }, 1);
      await queue.add(job('j-retry'));
      await until(events, (es) => es.some((e) => e.type === 'active'));
      // Wait for the failed try to reach its backoff, however slow the machine (no fixed sleep).
      const inFlight = async () => (await queue.inFlight()).map((j) => [j.id, j.state]);
      for (let i = 0; i < 1000 && JSON.stringify(await inFlight()) !== '[["j-retry","waiting"]]'; i++) await new Promise((r) => setTimeout(r, 10));
      states = await inFlight();
      removed = await queue.removeWaiting('j-retry');
      inFlightAfter = await queue.inFlight();
      await handle.close();
    });

    it('counts as waiting', () => {
      expect(states).toEqual([['j-retry', 'waiting']]);
    });

    it('can be removed, and does not run again', () => {
      expect(removed).toBe(true);
      expect(inFlightAfter).toEqual([]);
      expect(runs).toBe(1);
    });
  });

  it('close() on a processor waits for the running job to finish', async () => {
    const queue = await open();
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

describe('memory store (30 bytes)', () => {
  /** A store over its limit: settings (no expiry) written first, then a, b and c (expiring), 10 bytes each. */
  async function overfull() {
    const { MemoryStore } = await import('../src/state/store.ts');
    const store = new MemoryStore(30);
    onTestFinished(() => store.close());
    await store.set('settings', 'x'.repeat(10));
    for (const key of ['a', 'b', 'c']) await store.set(key, key.repeat(10), 60);
    return store;
  }

  it('evicts the oldest expiring value over its size limit', async () => {
    const store = await overfull();
    expect(await store.get('a')).toBeNull();
    expect((await store.get('b'))?.toString()).toBe('b'.repeat(10));
  });

  it('never evicts settings', async () => {
    expect(await (await overfull()).get('settings')).not.toBeNull();
  });

  it('setNX does not overwrite a value', async () => {
    expect(await (await overfull()).setNX('b', 'other', 60)).toBe(false);
  });

  it('expires keys; setNX writes over an expired one', async () => {
    const store = await overfull();
    await store.set('short', 'x', 0.001);
    await new Promise((r) => setTimeout(r, 5));
    expect(await store.get('short')).toBeNull();
    expect(await store.setNX('short', 'y', 60)).toBe(true);
  });
});
