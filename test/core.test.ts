// The bot core end to end on the in-process queue (fake engine in a worker thread): results, nudges,
// follow-up edits, caps, cancellation, retries, idempotency; settings persistence on Redis.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { LOST_IN_RESTART, RESTARTING } from '../src/core/bot.ts';
import type { App } from '../src/runtime/app.ts';
import type { InvocationContext } from '../src/core/types.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { getJSON } from '../src/state/store.ts';
import { PackCatalog } from '../src/engine/catalog.ts';
import { type EditJobData, type ResultMeta } from '../src/jobs/types.ts';
import { keys } from '../src/state/keys.ts';
import { collectUpdates, ctxFor, dropPrefix, makeTestBot, makeTestPack, targetFor, uniquePrefix } from './helpers/core-bot.ts';

const REDIS = 'redis://127.0.0.1:6379';

describe('bot core, in process', () => {
  let bot: App;
  let updates: ReturnType<typeof collectUpdates>;
  const edit = (text: string, ctx: InvocationContext = ctxFor('alice')) =>
    bot.invoke('styleclip', { kind: 'text', text }, ctx, targetFor(ctx));

  beforeAll(async () => {
    bot = await makeTestBot();
    updates = collectUpdates(bot);
  });
  afterAll(() => bot.close());

  it('queues, reports progress, completes with a caption, and serves the image in any size limit', async () => {
    const ctx = ctxFor('alice');
    const reply = await edit('blue eyes strength:3 seed:7', ctx);
    expect(reply.job).toEqual({ id: `playground-${ctx.requestId}`, position: 1 });
    const done = await updates.final(reply.job!.id);
    expect(done.status).toBe('completed');
    expect(done.target).toEqual(targetFor(ctx));
    expect(done.requesterId).toBe('alice');
    expect(done.text).toMatch(/\*\*blue eyes\*\* · global · strength 3 · threshold 0\.15 · 3 channels · seed 7 · job playground-/);
    expect(done.text).toMatch(/untrained demo pack "testpack"/);
    const statuses = updates.updates.filter((u) => u.jobId === reply.job!.id).map((u) => u.status);
    expect(statuses[0]).toBe('running');
    expect(statuses.at(-1)).toBe('completed');
    expect(statuses.filter((s) => s === 'completed')).toHaveLength(1);

    const png = await bot.resultImage(reply.job!.id);
    expect(png?.mime).toBe('image/png');
    expect((await sharp(png!.bytes).metadata()).width).toBe(8);
    const small = await bot.resultImage(reply.job!.id, png!.bytes.length - 1);
    expect(small!.bytes.length).toBeLessThan(png!.bytes.length);
    expect(['image/webp', 'image/jpeg']).toContain(small!.mime);
    expect(await bot.resultImage('playground-missing')).toBeNull();
  });

  it('nudges: requester only, once per dedupe key, strength ×1.5 / ÷1.5 from the same source, within bounds', async () => {
    const ctx = ctxFor('alice');
    const first = await edit('smile strength:4 seed:3', ctx);
    await updates.final(first.job!.id);
    const id = first.job!.id;
    const t = { platform: 'playground' as const, channelId: 'c1', messageId: 'nudge-msg' };
    expect(await bot.nudge(id, 'stronger', 'mallory', 'k-mallory', t)).toBeNull();
    const stronger = await bot.nudge(id, 'stronger', 'alice', 'k1', t);
    expect(stronger?.text).toMatch(/strength 6 /);
    expect(await bot.nudge(id, 'stronger', 'alice', 'k1', t)).toBeNull();
    const done = await updates.final(stronger!.job!.id);
    expect(done.text).toMatch(/strength 6 · .* seed 3 /);
    expect(done.target.messageId).toBe('nudge-msg');
    const weaker = await bot.nudge(id, 'weaker', 'alice', 'k2', t);
    expect(weaker?.text).toMatch(/strength 2\.67 /);
    // At the server's maximum there is nothing stronger to give.
    await bot.invoke('styleclip-admin', { kind: 'text', text: 'set strength-max 4' }, ctxFor('root', { isPlatformAdmin: true }), t);
    const capped = await bot.nudge(id, 'stronger', 'alice', 'k3', t);
    expect(capped).toMatchObject({ error: true, text: expect.stringMatching(/already 4/) });
    await bot.invoke('styleclip-admin', { kind: 'text', text: 'reset strength-max' }, ctxFor('root', { isPlatformAdmin: true }), t);
    await updates.final(weaker!.job!.id);
  });

  it('edits a previous result further, by id or by replying to its message', async () => {
    const first = await edit('smile seed:11');
    await updates.final(first.job!.id);
    await bot.linkMessage('playground', 'msg-first', first.job!.id);
    expect(await bot.jobForMessage('playground', 'msg-first')).toBe(first.job!.id);

    const byId = await edit(`glasses source:${first.job!.id}`);
    const byReply = await edit('glasses', ctxFor('alice', { replyToMessageKey: 'msg-first' }));
    for (const reply of [byId, byReply]) {
      const done = await updates.final(reply.job!.id);
      expect(done.status).toBe('completed');
      expect(done.text).toMatch(/seed 11 /); // the face's seed carries through
    }
    const suggested = await bot.autocomplete('styleclip', 'source', 'playground-', ctxFor('alice'));
    expect(suggested).toEqual(expect.arrayContaining([first.job!.id, byId.job!.id, byReply.job!.id]));
    expect(suggested.indexOf(first.job!.id)).toBeGreaterThan(suggested.indexOf(byId.job!.id)); // newest first
    expect(await bot.autocomplete('styleclip', 'source', '', ctxFor('nobody'))).toEqual([]);
    // Prompts autocomplete to the pack's mapper prompts.
    expect(await bot.autocomplete('styleclip', 'prompt', 'HAIR', ctxFor('alice'))).toEqual(['curly hair']);
    expect(await bot.autocomplete('styleclip', 'prompt', 'mohawk', ctxFor('alice'))).toEqual([]);
    const a = await bot.resultImage(byId.job!.id);
    const b = await bot.resultImage(byReply.job!.id);
    expect(a!.bytes.equals(b!.bytes)).toBe(true);
    const fresh = await bot.resultImage(first.job!.id);
    expect(a!.bytes.equals(fresh!.bytes)).toBe(false);
  });

  it('refuses a user over their limit, tells the position, and cancels queued and running jobs', async () => {
    const adminCtx = ctxFor('root', { isPlatformAdmin: true });
    const t = targetFor(adminCtx);
    await bot.invoke('styleclip-admin', { kind: 'text', text: 'set user-running 1' }, adminCtx, t);
    await bot.invoke('styleclip-admin', { kind: 'text', text: 'set user-waiting 1' }, adminCtx, t);
    const a = await edit('slow one', ctxFor('carol'));
    const b = await edit('slow two', ctxFor('carol'));
    const c = await edit('slow three', ctxFor('carol'));
    expect(a.job && b.job).toBeTruthy();
    expect(b.job!.position).toBeGreaterThanOrEqual(1);
    expect(c).toMatchObject({ error: true, text: expect.stringMatching(/already have 2 jobs running or waiting \(limit: 1 running \+ 1 waiting\)/) });
    expect((await bot.queue.inFlight()).filter((j) => j.data.requesterId === 'carol')).toHaveLength(2);

    // Cancel suggests carol's jobs, and not to a same-named user on another platform.
    expect(await bot.autocomplete('styleclip-cancel', 'job', '', ctxFor('carol'))).toEqual(expect.arrayContaining([a.job!.id, b.job!.id]));
    expect(await bot.autocomplete('styleclip-cancel', 'job', '', ctxFor('carol', { platform: 'slack' }))).toEqual([]);
    const info = await bot.invoke('styleclip-info', { kind: 'text', text: '' }, ctxFor('carol'), t);
    expect(info.text).toMatch(/Running jobs: \d|Queued jobs: \d/);
    const cancel = await bot.invoke('styleclip-cancel', { kind: 'text', text: '' }, ctxFor('carol'), t);
    expect(cancel.text).toBe('Cancelled 2 job(s).');
    expect((await updates.final(a.job!.id)).status).toBe('cancelled');
    expect((await updates.final(b.job!.id)).status).toBe('cancelled');
    expect(await bot.resultImage(a.job!.id)).toBeNull();
    await bot.invoke('styleclip-admin', { kind: 'text', text: 'reset all' }, adminCtx, t);
  });

  it('is idempotent per request id, retries transient faults, and explains permanent failures', async () => {
    const ctx = ctxFor('dave');
    const one = await edit('flaky edit seed:1', ctx);
    const again = await edit('flaky edit seed:1', ctx);
    expect(again.text).toBe(`Already queued as job ${one.job!.id}.`);
    expect((await updates.final(one.job!.id)).status).toBe('completed');
    const bad = await edit('nochannels at all');
    const failed = await updates.final(bad.job!.id);
    expect(failed).toMatchObject({ status: 'failed', text: 'Edit failed: no style channel passes threshold for "nochannels at all"' });
    expect(updates.finals().filter((u) => u.jobId === one.job!.id)).toHaveLength(1);
  });

  it('a crashed engine thread fails its job after the retries, and the next job gets a fresh thread', async () => {
    const crash = await edit('crash the engine');
    const failed = await updates.final(crash.job!.id);
    expect(failed).toMatchObject({ status: 'failed', text: 'Edit failed: engine thread exited (code 3)' });
    const after = await edit('smile seed:9');
    expect((await updates.final(after.job!.id)).status).toBe('completed');
  });

  it('deletes a finished result on ❌ from its requester', async () => {
    const reply = await edit('smile seed:5');
    await updates.final(reply.job!.id);
    expect(await bot.cancel(reply.job!.id, 'alice', 'del-1')).toEqual({ text: 'Deleted.', ephemeral: true });
    expect(await bot.resultImage(reply.job!.id)).toBeNull();
  });

  it('exposes Prometheus metrics for queue depth, latency, batch sizes and failures', async () => {
    const text = await bot.metricsText();
    expect(text).toMatch(/styleclip_queue_depth\{state="waiting"\} 0/);
    expect(text).toMatch(/styleclip_job_latency_seconds_count\{outcome="completed"\} [1-9]/);
    expect(text).toMatch(/styleclip_batch_size_count [1-9]/);
    expect(text).toMatch(/styleclip_job_failures_total\{cause="no_channels"\} 1/);
  });
});

describe('nudges follow the server rules of /styleclip', () => {
  let bot: App;
  let updates: ReturnType<typeof collectUpdates>;
  const root = () => ctxFor('root', { isPlatformAdmin: true });
  const admin = (text: string) => bot.invoke('styleclip-admin', { kind: 'text', text }, root(), targetFor(root()));
  const here = { platform: 'playground' as const, channelId: 'c1', messageId: 'nudged' };
  beforeEach(async () => {
    bot = await makeTestBot();
    updates = collectUpdates(bot);
  });
  afterEach(() => bot.close());

  async function result(text: string): Promise<string> {
    const ctx = ctxFor('bob');
    const reply = await bot.invoke('styleclip', { kind: 'text', text }, ctx, targetFor(ctx));
    await updates.final(reply.job!.id);
    return reply.job!.id;
  }

  it('refuses a ➕ on a result whose prompt an admin has blocked since', async () => {
    const id = await result('curly hair seed:1');
    await admin('block curly');
    expect(await bot.nudge(id, 'stronger', 'bob', 'blocked-1', here)).toEqual({
      text: 'Your prompt contains a word that is blocked on this server.',
      ephemeral: true,
      error: true,
    });
    expect(await bot.queue.inFlight()).toEqual([]);
  });

  it('refuses a ➕ in a channel that was removed from the allowed list', async () => {
    const id = await result('smile seed:1');
    await admin('set channels c2');
    const refused = await bot.nudge(id, 'stronger', 'bob', 'channel-1', here);
    expect(refused).toMatchObject({ error: true, text: expect.stringMatching(/not enabled in this channel.*c2/) });
    expect(await bot.queue.inFlight()).toEqual([]);
  });

  it('plans a ➕ like /styleclip: a mapper edit stays a mapper edit at the nudged strength', async () => {
    const id = await result('curly hair method:mapper strength:2 seed:1');
    const stronger = await bot.nudge(id, 'stronger', 'bob', 'mapper-1', here);
    const done = await updates.final(stronger!.job!.id);
    expect(done.text).toMatch(/\*\*curly hair\*\* · mapper · strength 3 /);
  });
});

describe('metrics', () => {
  const value = (text: string, series: string) =>
    Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);

  it('engine time is observed once per batch, not once per job', async () => {
    const bot = await makeTestBot({ batchSize: 4, batchWindowMs: 5000 }); // the fourth job starts the batch
    const updates = collectUpdates(bot);
    try {
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) {
        const ctx = ctxFor(`user${i}`);
        ids.push((await bot.invoke('styleclip', { kind: 'text', text: `smile seed:${i}` }, ctx, targetFor(ctx))).job!.id);
      }
      for (const id of ids) expect((await updates.final(id)).status).toBe('completed');
      const text = await bot.metricsText();
      expect(value(text, 'styleclip_batch_size_count')).toBe(1);
      expect(value(text, 'styleclip_batch_size_sum')).toBe(4);
      expect(value(text, 'styleclip_engine_seconds_count{stage="engine"}')).toBe(1);
      expect(value(text, 'styleclip_engine_seconds_count{stage="encode"}')).toBe(1);
      expect(value(text, 'styleclip_job_latency_seconds_count{outcome="completed"}')).toBe(4);
      expect(text).toMatch(/# HELP styleclip_engine_seconds Engine time per batch \(one observation per synthesis call, not per job\)/);
    } finally {
      await bot.close();
    }
  });

  it('every failed try counts in styleclip_job_failures_total, retried ones included; the job counts once as failed', async () => {
    const bot = await makeTestBot();
    const updates = collectUpdates(bot);
    try {
      const ctx = ctxFor('crasher');
      const crashed = await bot.invoke('styleclip', { kind: 'text', text: 'crash it' }, ctx, targetFor(ctx));
      expect((await updates.final(crashed.job!.id)).status).toBe('failed');
      const text = await bot.metricsText();
      expect(value(text, 'styleclip_job_failures_total{cause="internal"}')).toBe(3); // three tries
      expect(value(text, 'styleclip_jobs_total{status="failed"}')).toBe(1);
      expect(text).not.toMatch(/^styleclip_engine_seconds_count/m); // no batch produced an image
      expect(text).toMatch(/# HELP styleclip_job_failures_total Failed job attempts by cause, .*including tries that are retried later/);
    } finally {
      await bot.close();
    }
  });
});

/** One edit from each of `users` users (user0, user1, …), submitted in order; returns the job ids. */
async function editsFromUsers(bot: App, users: number, text: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < users; i++) {
    const ctx = ctxFor(`user${i}`);
    ids.push((await bot.invoke('styleclip', { kind: 'text', text: `${text} ${i}` }, ctx, targetFor(ctx))).job!.id);
  }
  return ids;
}

describe('queue positions', () => {
  it('waiting jobs are told their new place as the jobs ahead start', async () => {
    process.env.FAKE_ENGINE_DELAY_MS = '600'; // read by the engine thread when it starts
    const bot = await makeTestBot({ batchSize: 1 });
    delete process.env.FAKE_ENGINE_DELAY_MS;
    const updates = collectUpdates(bot);
    try {
      // Four run at once (one at a time in the engine), so jobs 5 and 6 wait at positions 1 and 2.
      const ids = await editsFromUsers(bot, 6, 'edit');
      // A burst from one user does not hold up another user's first job.
      const burst = ctxFor('user0');
      const fifth = await bot.invoke('styleclip', { kind: 'text', text: 'again' }, burst, targetFor(burst));
      const newcomer = ctxFor('newcomer');
      const first = await bot.invoke('styleclip', { kind: 'text', text: 'hello' }, newcomer, targetFor(newcomer));
      const order = (await bot.queue.inFlight()).filter((j) => j.state === 'waiting').map((j) => j.id);
      expect(order.indexOf(first.job!.id)).toBeLessThan(order.indexOf(fifth.job!.id));
      expect(first.job!.position).toBe(order.indexOf(first.job!.id) + 1);
      await updates.final(ids[5]);
      const last = updates.updates.filter((u) => u.jobId === ids[5] && u.status === 'queued');
      expect(last.at(-1)).toMatchObject({ status: 'queued', position: 1, text: expect.stringMatching(/position 1\.$/) });
      const statuses = updates.updates.filter((u) => u.jobId === ids[5]).map((u) => u.status);
      expect(statuses.indexOf('queued')).toBeLessThan(statuses.indexOf('running'));
    } finally {
      await bot.close();
    }
  });
});

describe('shutdown', () => {
  it('drain() lets running jobs finish and deliver, fails the waiting ones with a message, and refuses new jobs', async () => {
    const bot = await makeTestBot({ batchSize: 1 });
    const updates = collectUpdates(bot);
    try {
      // Four run at once (one at a time in the engine, 300 ms each); the last two wait.
      const ids = await editsFromUsers(bot, 6, 'slow');
      expect((await bot.queue.inFlight()).filter((j) => j.state === 'active')).toHaveLength(4);
      await bot.drain();
      const finals = new Map(updates.finals().map((u) => [u.jobId, u]));
      expect(ids.slice(0, 4).map((id) => finals.get(id)?.status)).toEqual(['completed', 'completed', 'completed', 'completed']);
      expect(ids.slice(4).map((id) => finals.get(id)?.text)).toEqual([LOST_IN_RESTART, LOST_IN_RESTART]);
      const late = ctxFor('late');
      expect(await bot.invoke('styleclip', { kind: 'text', text: 'smile' }, late, targetFor(late))).toMatchObject({ error: true, text: RESTARTING });
      expect(await bot.queue.inFlight()).toEqual([]);
    } finally {
      await bot.close();
    }
  });
});

describe('named packs', () => {
  it('an admin switches the server to another pack from STYLECLIP_PACKS_DIR; its jobs and results use it', async () => {
    const packsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'styleclip-packs-'));
    fs.renameSync(makeTestPack('ignored', { mappers: [] }), path.join(packsDir, 'plain'));
    const bot = await makeTestBot({ packsDir });
    const updates = collectUpdates(bot);
    try {
      const adminCtx = ctxFor('root', { isPlatformAdmin: true });
      const set = await bot.invoke('styleclip-admin', { kind: 'text', text: 'set pack plain' }, adminCtx, targetFor(adminCtx));
      expect(set.text).toMatch(/^Set pack\.\npack: plain/);
      const ctx = ctxFor('alice');
      const reply = await bot.invoke('styleclip', { kind: 'text', text: 'curly hair seed:1' }, ctx, targetFor(ctx));
      expect(reply.text).toMatch(/· global ·/); // "plain" has no mappers, so auto picks global
      expect((await updates.final(reply.job!.id)).status).toBe('completed');
      const data = await getJSON<EditJobData>(bot.store, keys.job(reply.job!.id));
      expect(data?.pack).toBe('plain');
    } finally {
      await bot.close();
    }
  });
});

describe('running caps', () => {
  it('user-running and server-running hold in the worker: a job over a cap waits for a slot while others go ahead', async () => {
    const bot = await makeTestBot({ batchSize: 8, batchWindowMs: 30 }); // without the caps, these would share batches
    const updates = collectUpdates(bot);
    const admin = ctxFor('root', { isPlatformAdmin: true });
    const set = (text: string) => bot.invoke('styleclip-admin', { kind: 'text', text }, admin, targetFor(admin));
    const submit = async (user: string, text: string) => {
      const ctx = ctxFor(user);
      return (await bot.invoke('styleclip', { kind: 'text', text }, ctx, targetFor(ctx))).job!.id;
    };
    /** When each job really ran: from passing its caps to its result. */
    const spans = (ids: string[]) =>
      Promise.all(
        ids.map(async (id) => {
          expect((await updates.final(id)).status).toBe('completed');
          const meta = (await getJSON<ResultMeta>(bot.store, keys.resultMeta(id)))!;
          const data = (await getJSON<EditJobData>(bot.store, keys.job(id)))!;
          return [data.submittedAt + meta.timings.queueMs, meta.completedAt] as const;
        }),
      );
    const overlap = (a: readonly number[], b: readonly number[]) => a[0] < b[1] && b[0] < a[1];
    const anyOverlap = (xs: (readonly number[])[]) => xs.some((a, i) => xs.some((b, j) => i < j && overlap(a, b)));
    try {
      await set('set user-running 1');
      const alice = [await submit('alice', 'slow a1'), await submit('alice', 'slow a2'), await submit('alice', 'slow a3')];
      const bob = await submit('bob', 'slow b1');
      const a = await spans(alice);
      const [b] = await spans([bob]);
      expect(anyOverlap(a)).toBe(false); // one at a time
      expect(a.some((s) => overlap(s, b))).toBe(true); // bob did not wait behind alice's queue
      expect(updates.updates.filter((u) => alice.includes(u.jobId) && u.status === 'failed')).toEqual([]);

      await set('set user-running 3');
      await set('set server-running 1');
      const others = await spans([await submit('carol', 'slow c1'), await submit('dave', 'slow d1'), await submit('carol', 'slow c2')]);
      expect(anyOverlap(others)).toBe(false);
      const metrics = await bot.metricsText();
      expect(metrics).toMatch(/styleclip_jobs_postponed_total\{cap="user"\} [1-9]/);
      expect(metrics).toMatch(/styleclip_jobs_postponed_total\{cap="server"\} [1-9]/);

      await set('set server-running 0'); // pauses: a job accepted now would never run
      const ctx = ctxFor('erin');
      const paused = await bot.invoke('styleclip', { kind: 'text', text: 'smile' }, ctx, targetFor(ctx));
      expect(paused).toMatchObject({ error: true, text: 'Edits are paused on this server (an admin set server-running to 0).' });
      expect(await bot.queue.inFlight()).toEqual([]);
    } finally {
      await bot.close();
    }
  });
});

describe('pack catalog', () => {
  it('finds a named pack by folder, sees its pack.json change, and never leaves STYLECLIP_PACKS_DIR', () => {
    const packsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'styleclip-packs-'));
    fs.renameSync(makeTestPack('ignored'), path.join(packsDir, 'plain'));
    const catalog = new PackCatalog(makeTestPack('main'), packsDir);
    expect(catalog.get('plain')).toMatchObject({ name: 'plain', dir: path.join(packsDir, 'plain'), mappers: [{ slug: 'curly_hair' }] });
    const file = path.join(packsDir, 'plain', 'pack.json');
    fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), mappers: [] }));
    fs.utimesSync(file, new Date(), new Date(Date.now() + 60_000)); // a new mtime, whatever the clock's resolution
    expect(catalog.get('plain')?.mappers).toEqual([]);
    for (const name of ['..', '.', '../plain', 'plain/', 'nope']) expect(catalog.get(name), name).toBeUndefined();
    expect(catalog.get(null)?.name).toBe('main');
    expect(catalog.list().map((p) => p.name)).toEqual(['main', 'plain']);
  });
});

describe('bot core start-up', () => {
  it('fails with the engine\'s message when the pack cannot be opened, leaving nothing running', async () => {
    const dir = makeTestPack();
    const broken = `${dir}-broken`;
    fs.renameSync(dir, broken);
    await expect(makeTestBot({ packDir: broken })).rejects.toThrow(/pack .*-broken is broken/);
  });

  it('names the missing pack.json and how to make one', async () => {
    await expect(makeTestBot({ packDir: '/nonexistent/pack' })).rejects.toThrow(
      'no model pack at /nonexistent/pack (pack.json not found); build one with: npm run toolkit -- tiny-pack --out /nonexistent/pack',
    );
  });
});

describe('bot core on Redis', () => {
  const prefix = uniquePrefix('core');
  afterEach(() => dropPrefix(REDIS, prefix));

  it('keeps server settings and their audit log across restarts', async () => {
    const adminCtx = ctxFor('root', { isPlatformAdmin: true });
    const first = await makeTestBot({ redisUrl: REDIS, prefix, worker: false });
    await first.invoke('styleclip-admin', { kind: 'text', text: 'set strength-default 2.5' }, adminCtx, targetFor(adminCtx));
    await first.close();
    const second = await makeTestBot({ redisUrl: REDIS, prefix, worker: false });
    try {
      const show = await second.invoke('styleclip-admin', { kind: 'text', text: 'show' }, ctxFor('anyone'), targetFor(adminCtx));
      expect(show.text).toContain('strength: -10 to 10, default 2.5');
      const log = await second.invoke('styleclip-admin', { kind: 'text', text: 'log' }, adminCtx, targetFor(adminCtx));
      expect(log.text).toMatch(/root: set strength-default = 2\.5/);
    } finally {
      await second.close();
    }
  });
});
