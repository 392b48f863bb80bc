// The bot core end to end on the in-process queue (fake engine in a worker thread): results, nudges,
// follow-up edits, caps, cancellation, retries, idempotency; settings persistence on Redis.
// Scenarios that take time run once in a beforeAll; each `it` then checks one thing about them.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { LOST_IN_RESTART, RESTARTING } from '../src/core/bot.ts';
import type { App } from '../src/runtime/app.ts';
import type { CommandReply, InvocationContext, JobUpdate } from '../src/core/types.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { getJSON } from '../src/state/store.ts';
import { PackCatalog } from '../src/engine/catalog.ts';
import { type EditJobData, type ResultMeta } from '../src/jobs/types.ts';
import { keys } from '../src/state/keys.ts';
import { collectUpdates, ctxFor, dropPrefix, makeTestBot, makeTestPack, targetFor, uniquePrefix } from './helpers/core-bot.ts';

const REDIS = 'redis://127.0.0.1:6379';

/** `/styleclip <text>`, by alice unless `ctx` says otherwise. */
const edit = (bot: App, text: string, ctx: InvocationContext = ctxFor('alice')) => bot.invoke('styleclip', { kind: 'text', text }, ctx, targetFor(ctx));

/** `/styleclip-admin <text>` from a platform admin. */
function adminSays(bot: App, text: string) {
  const root = ctxFor('root', { isPlatformAdmin: true });
  return bot.invoke('styleclip-admin', { kind: 'text', text }, root, targetFor(root));
}

const resultMeta = (bot: App, jobId: string) => getJSON<ResultMeta>(bot.store, keys.resultMeta(jobId));
const jobData = (bot: App, jobId: string) => getJSON<EditJobData>(bot.store, keys.job(jobId));

/** The value of one Prometheus series in a metrics text. */
const metric = (text: string, series: string) => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);

/** One edit from each of `users` users (user0, user1, …), submitted in order; returns the job ids. */
async function editsFromUsers(bot: App, users: number, text: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < users; i++) ids.push((await edit(bot, `${text} ${i}`, ctxFor(`user${i}`))).job!.id);
  return ids;
}

describe('bot core, in process', () => {
  const FLAKY = 'freckles'; // its first try fails
  const NO_CHANNELS = 'tattoos'; // no style channel passes: a permanent failure
  let bot: App;
  let updates: ReturnType<typeof collectUpdates>;

  beforeAll(async () => {
    bot = await makeTestBot({ engine: { failFirstTries: [FLAKY], noChannelsFor: [NO_CHANNELS] } });
    updates = collectUpdates(bot);
  });
  afterAll(() => bot.close());

  describe('an edit', () => {
    const ctx = ctxFor('alice');
    let reply: CommandReply;
    let done: JobUpdate;
    beforeAll(async () => {
      reply = await edit(bot, 'blue eyes strength:3 seed:7', ctx);
      done = await updates.final(reply.job!.id);
    });
    const statuses = () => updates.updates.filter((u) => u.jobId === reply.job!.id).map((u) => u.status);

    it('is queued at position 1 under an id made from the request id', () => {
      expect(reply.job).toEqual({ id: `playground-${ctx.requestId}`, position: 1 });
    });

    it('completes for its requester, at the reply target', () => {
      expect(done.status).toBe('completed');
      expect(done.target).toEqual(targetFor(ctx));
      expect(done.requesterId).toBe('alice');
    });

    it('reports running first and completed once, last', () => {
      expect(statuses()[0]).toBe('running');
      expect(statuses().at(-1)).toBe('completed');
      expect(statuses().filter((s) => s === 'completed')).toHaveLength(1);
    });

    it('is captioned with its prompt, method, strength, threshold, channels, seed and job', () => {
      expect(done.text).toMatch(/\*\*blue eyes\*\* · global · strength 3 · threshold 0\.15 · 3 channels · seed 7 · job playground-/);
    });

    it('says in the caption that the pack is an untrained demo', () => {
      expect(done.text).toMatch(/untrained demo pack "testpack"/);
    });

    it('serves its image as a PNG at the engine resolution', async () => {
      const png = await bot.resultImage(reply.job!.id);
      expect(png?.mime).toBe('image/png');
      expect((await sharp(png!.bytes).metadata()).width).toBe(8);
    });

    it('serves its image as a smaller WebP or JPEG under a size limit below the PNG', async () => {
      const png = await bot.resultImage(reply.job!.id);
      const small = await bot.resultImage(reply.job!.id, png!.bytes.length - 1);
      expect(small!.bytes.length).toBeLessThan(png!.bytes.length);
      expect(['image/webp', 'image/jpeg']).toContain(small!.mime);
    });
  });

  it('has no image for an unknown job', async () => {
    expect(await bot.resultImage('playground-missing')).toBeNull();
  });

  it('deletes a finished result on ❌ from its requester', async () => {
    const reply = await edit(bot, 'smile seed:5');
    await updates.final(reply.job!.id);
    expect(await bot.cancel(reply.job!.id, 'alice', 'del-1')).toEqual({ text: 'Deleted.', ephemeral: true });
    expect(await bot.resultImage(reply.job!.id)).toBeNull();
  });

  describe('➕/➖ on a result', () => {
    const here = { platform: 'playground' as const, channelId: 'c1', messageId: 'nudge-msg' };
    let source: string;
    let keyCounter = 0;
    const nudge = (kind: 'stronger' | 'weaker', user = 'alice', key = `k${++keyCounter}`) => bot.nudge(source, kind, user, key, here);
    beforeAll(async () => {
      source = (await edit(bot, 'smile strength:4 seed:3')).job!.id;
      await updates.final(source);
    });

    it('is ignored from anyone but the requester', async () => {
      expect(await nudge('stronger', 'mallory')).toBeNull();
    });

    it('➕ queues the same edit at 1.5× the strength', async () => {
      const stronger = await nudge('stronger');
      expect(stronger?.text).toMatch(/strength 6 /);
      await updates.final(stronger!.job!.id);
      expect(await resultMeta(bot, stronger!.job!.id)).toMatchObject({ info: { strength: 6 }, seed: 3 });
    });

    it('is queued once per dedupe key', async () => {
      const first = await nudge('stronger', 'alice', 'once');
      expect(await nudge('stronger', 'alice', 'once')).toBeNull();
      await updates.final(first!.job!.id);
    });

    it('delivers the nudged result at the message that was nudged', async () => {
      const stronger = await nudge('stronger');
      expect((await updates.final(stronger!.job!.id)).target.messageId).toBe('nudge-msg');
    });

    it('➖ after a ➕ starts again from the source: its strength ÷ 1.5', async () => {
      await updates.final((await nudge('stronger'))!.job!.id);
      const weaker = await nudge('weaker');
      expect(weaker?.text).toMatch(/strength 2\.67 /);
      await updates.final(weaker!.job!.id);
    });
  });

  describe('a follow-up edit', () => {
    let first: string;
    let byId: JobUpdate;
    let byReply: JobUpdate;
    beforeAll(async () => {
      first = (await edit(bot, 'smile seed:11')).job!.id;
      await updates.final(first);
      await bot.linkMessage('playground', 'msg-first', first);
      const [a, b] = [await edit(bot, `glasses source:${first}`), await edit(bot, 'glasses', ctxFor('alice', { replyToMessageKey: 'msg-first' }))];
      [byId, byReply] = [await updates.final(a.job!.id), await updates.final(b.job!.id)];
    });
    const image = async (id: string) => (await bot.resultImage(id))!.bytes;

    it('finds the job of a linked message', async () => {
      expect(await bot.jobForMessage('playground', 'msg-first')).toBe(first);
    });

    it('edits a previous result named by its id, keeping the face’s seed', async () => {
      expect(byId.status).toBe('completed');
      expect((await resultMeta(bot, byId.jobId))?.seed).toBe(11);
    });

    it('edits the result whose message it replies to, keeping the face’s seed', async () => {
      expect(byReply.status).toBe('completed');
      expect((await resultMeta(bot, byReply.jobId))?.seed).toBe(11);
    });

    it('gives the same image by id or by reply', async () => {
      expect((await image(byId.jobId)).equals(await image(byReply.jobId))).toBe(true);
    });

    it('changes the image of its source', async () => {
      expect((await image(byId.jobId)).equals(await image(first))).toBe(false);
    });

    it('is offered the user’s results as sources, newest first', async () => {
      const suggested = await bot.autocomplete('styleclip', 'source', 'playground-', ctxFor('alice'));
      expect(suggested).toEqual(expect.arrayContaining([first, byId.jobId, byReply.jobId]));
      expect(suggested.indexOf(first)).toBeGreaterThan(suggested.indexOf(byId.jobId));
    });

    it('offers no sources to a user without results', async () => {
      expect(await bot.autocomplete('styleclip', 'source', '', ctxFor('nobody'))).toEqual([]);
    });
  });

  it('autocompletes prompts to the pack’s mapper prompts, ignoring case', async () => {
    expect(await bot.autocomplete('styleclip', 'prompt', 'HAIR', ctxFor('alice'))).toEqual(['curly hair']);
  });

  it('autocompletes no prompt when no mapper prompt matches', async () => {
    expect(await bot.autocomplete('styleclip', 'prompt', 'mohawk', ctxFor('alice'))).toEqual([]);
  });

  it('answers a repeated request id with the job it already queued, and runs it once', async () => {
    const ctx = ctxFor('dave');
    const one = await edit(bot, 'smile seed:1', ctx);
    const again = await edit(bot, 'smile seed:1', ctx);
    expect(again.text).toBe(`Already queued as job ${one.job!.id}.`);
    expect((await updates.final(one.job!.id)).status).toBe('completed');
    expect(updates.finals().filter((u) => u.jobId === one.job!.id)).toHaveLength(1);
  });

  it('retries a transient engine fault: the job completes, answered once', async () => {
    const reply = await edit(bot, `${FLAKY} seed:1`, ctxFor('dave'));
    expect((await updates.final(reply.job!.id)).status).toBe('completed');
    expect(updates.finals().filter((u) => u.jobId === reply.job!.id)).toHaveLength(1);
  });

  describe('a permanent engine failure', () => {
    let failed: JobUpdate;
    beforeAll(async () => {
      failed = await updates.final((await edit(bot, NO_CHANNELS)).job!.id);
    });

    it('fails the job with the engine’s explanation', () => {
      expect(failed).toMatchObject({ status: 'failed', text: `Edit failed: no style channel passes threshold for "${NO_CHANNELS}"` });
    });

    it('counts in styleclip_job_failures_total by its cause', async () => {
      expect(metric(await bot.metricsText(), 'styleclip_job_failures_total{cause="no_channels"}')).toBe(1);
    });
  });
});

describe('a user at their job limit (1 running + 1 waiting)', () => {
  let bot: App;
  let updates: ReturnType<typeof collectUpdates>;
  let accepted: CommandReply[];
  let refused: CommandReply;
  const carol = () => ctxFor('carol');
  beforeAll(async () => {
    bot = await makeTestBot({ engine: { delayMs: 1000 } }); // carol's jobs stay in flight while we look
    updates = collectUpdates(bot);
    await adminSays(bot, 'set user-running 1');
    await adminSays(bot, 'set user-waiting 1');
    accepted = [await edit(bot, 'smile one', carol()), await edit(bot, 'smile two', carol())];
    refused = await edit(bot, 'smile three', carol());
  });
  afterAll(() => bot.close());

  it('has jobs accepted up to the limit, told their queue position', () => {
    expect(accepted[0].job && accepted[1].job).toBeTruthy();
    expect(accepted[1].job!.position).toBeGreaterThanOrEqual(1);
  });

  it('is refused a job over the limit, told the limit', async () => {
    expect(refused).toMatchObject({ error: true, text: expect.stringMatching(/already have 2 jobs running or waiting \(limit: 1 running \+ 1 waiting\)/) });
    expect((await bot.queue.inFlight()).filter((j) => j.data.requesterId === 'carol')).toHaveLength(2);
  });

  it('is offered their jobs to cancel', async () => {
    expect(await bot.autocomplete('styleclip-cancel', 'job', '', carol())).toEqual(expect.arrayContaining(accepted.map((r) => r.job!.id)));
  });

  it('shares no jobs to cancel with a same-named user on another platform', async () => {
    expect(await bot.autocomplete('styleclip-cancel', 'job', '', ctxFor('carol', { platform: 'slack' }))).toEqual([]);
  });

  it('sees their jobs in /styleclip-info', async () => {
    const info = await bot.invoke('styleclip-info', { kind: 'text', text: '' }, carol(), targetFor(carol()));
    expect(info.text).toMatch(/Running jobs: \d|Queued jobs: \d/);
  });

  describe('then /styleclip-cancel', () => {
    let cancel: CommandReply;
    beforeAll(async () => {
      cancel = await bot.invoke('styleclip-cancel', { kind: 'text', text: '' }, carol(), targetFor(carol()));
    });

    it('says how many jobs it cancelled', () => {
      expect(cancel.text).toBe('Cancelled 2 job(s).');
    });

    it('ends the running and the queued job as cancelled', async () => {
      for (const r of accepted) expect((await updates.final(r.job!.id)).status).toBe('cancelled');
    });

    it('leaves no result of a cancelled job', async () => {
      expect(await bot.resultImage(accepted[0].job!.id)).toBeNull();
    });
  });
});

describe('a crashed engine thread', () => {
  let bot: App;
  let failed: JobUpdate;
  let metricsAfterCrash: string;
  let next: JobUpdate;
  beforeAll(async () => {
    bot = await makeTestBot({ engine: { crashOn: ['crown'] } });
    const updates = collectUpdates(bot);
    failed = await updates.final((await edit(bot, 'crown')).job!.id);
    metricsAfterCrash = await bot.metricsText();
    next = await updates.final((await edit(bot, 'smile seed:9')).job!.id);
  });
  afterAll(() => bot.close());

  it('fails its job after the retries, with the thread’s exit code', () => {
    expect(failed).toMatchObject({ status: 'failed', text: 'Edit failed: engine thread exited (code 3)' });
  });

  it('is replaced by a fresh thread for the next job', () => {
    expect(next.status).toBe('completed');
  });

  it('counts every failed try in styleclip_job_failures_total, retried ones included', () => {
    expect(metric(metricsAfterCrash, 'styleclip_job_failures_total{cause="internal"}')).toBe(3); // three tries
    expect(metricsAfterCrash).toMatch(/# HELP styleclip_job_failures_total Failed job attempts by cause, .*including tries that are retried later/);
  });

  it('counts the job once as failed', () => {
    expect(metric(metricsAfterCrash, 'styleclip_jobs_total{status="failed"}')).toBe(1);
  });

  it('observes no engine time, as no batch produced an image', () => {
    expect(metricsAfterCrash).not.toMatch(/^styleclip_engine_seconds_count/m);
  });
});

describe('nudges follow the server rules of /styleclip', () => {
  let bot: App;
  let updates: ReturnType<typeof collectUpdates>;
  const here = { platform: 'playground' as const, channelId: 'c1', messageId: 'nudged' };
  beforeEach(async () => {
    bot = await makeTestBot();
    updates = collectUpdates(bot);
  });
  afterEach(() => bot.close());

  async function result(text: string): Promise<string> {
    const reply = await edit(bot, text, ctxFor('bob'));
    await updates.final(reply.job!.id);
    return reply.job!.id;
  }

  it('refuses a ➕ on a result whose prompt an admin has blocked since', async () => {
    const id = await result('curly hair seed:1');
    await adminSays(bot, 'block curly');
    expect(await bot.nudge(id, 'stronger', 'bob', 'blocked-1', here)).toEqual({
      text: 'Your prompt contains a word that is blocked on this server.',
      ephemeral: true,
      error: true,
    });
    expect(await bot.queue.inFlight()).toEqual([]);
  });

  it('refuses a ➕ in a channel that was removed from the allowed list', async () => {
    const id = await result('smile seed:1');
    await adminSays(bot, 'set channels c2');
    const refused = await bot.nudge(id, 'stronger', 'bob', 'channel-1', here);
    expect(refused).toMatchObject({ error: true, text: expect.stringMatching(/not enabled in this channel.*c2/) });
    expect(await bot.queue.inFlight()).toEqual([]);
  });

  it('refuses a ➕ at the server’s strength maximum: there is nothing stronger to give', async () => {
    const id = await result('smile strength:4 seed:3');
    await adminSays(bot, 'set strength-max 4');
    expect(await bot.nudge(id, 'stronger', 'bob', 'max-1', here)).toMatchObject({ error: true, text: expect.stringMatching(/already 4/) });
  });

  it('plans a ➕ like /styleclip: a mapper edit stays a mapper edit at the nudged strength', async () => {
    const id = await result('curly hair method:mapper strength:2 seed:1');
    const stronger = await bot.nudge(id, 'stronger', 'bob', 'mapper-1', here);
    await updates.final(stronger!.job!.id);
    expect(await resultMeta(bot, stronger!.job!.id)).toMatchObject({ info: { method: 'mapper', mapper: 'curly_hair', strength: 3 } });
  });
});

describe('metrics of four jobs in one batch', () => {
  let bot: App;
  let finals: JobUpdate[];
  let text: string;
  beforeAll(async () => {
    bot = await makeTestBot({ batchSize: 4, batchWindowMs: 5000 }); // the fourth job starts the batch
    const updates = collectUpdates(bot);
    const ids = await editsFromUsers(bot, 4, 'smile');
    finals = await Promise.all(ids.map((id) => updates.final(id)));
    text = await bot.metricsText();
  });
  afterAll(() => bot.close());

  it('count one batch of four', () => {
    expect(finals.map((u) => u.status)).toEqual(['completed', 'completed', 'completed', 'completed']);
    expect(metric(text, 'styleclip_batch_size_count')).toBe(1);
    expect(metric(text, 'styleclip_batch_size_sum')).toBe(4);
  });

  it('observe engine time once per batch, not once per job', () => {
    expect(metric(text, 'styleclip_engine_seconds_count{stage="engine"}')).toBe(1);
    expect(metric(text, 'styleclip_engine_seconds_count{stage="encode"}')).toBe(1);
    expect(text).toMatch(/# HELP styleclip_engine_seconds Engine time per batch \(one observation per synthesis call, not per job\)/);
  });

  it('observe latency once per job', () => {
    expect(metric(text, 'styleclip_job_latency_seconds_count{outcome="completed"}')).toBe(4);
  });

  it('show no job waiting once all are done', () => {
    expect(text).toMatch(/styleclip_queue_depth\{state="waiting"\} 0/);
  });
});

describe('queue positions (one job at a time in the engine, 600 ms each)', () => {
  let bot: App;
  let updates: ReturnType<typeof collectUpdates>;
  let ids: string[];
  let burst: CommandReply;
  let newcomer: CommandReply;
  let waitingOrder: string[];
  beforeAll(async () => {
    bot = await makeTestBot({ batchSize: 1, engine: { delayMs: 600 } });
    updates = collectUpdates(bot);
    ids = await editsFromUsers(bot, 6, 'edit'); // four run at once, so the last two wait at positions 1 and 2
    burst = await edit(bot, 'again', ctxFor('user0'));
    newcomer = await edit(bot, 'hello', ctxFor('newcomer'));
    waitingOrder = (await bot.queue.inFlight()).filter((j) => j.state === 'waiting').map((j) => j.id);
    await updates.final(ids[5]);
  });
  afterAll(() => bot.close());

  it('puts a user’s first job ahead of another user’s burst', () => {
    expect(waitingOrder.indexOf(newcomer.job!.id)).toBeLessThan(waitingOrder.indexOf(burst.job!.id));
  });

  it('tells a job its place in the queue when it is accepted', () => {
    expect(newcomer.job!.position).toBe(waitingOrder.indexOf(newcomer.job!.id) + 1);
  });

  it('tells a waiting job its new place as the jobs ahead start', () => {
    const queued = updates.updates.filter((u) => u.jobId === ids[5] && u.status === 'queued');
    expect(queued.at(-1)).toMatchObject({ status: 'queued', position: 1, text: expect.stringMatching(/position 1\.$/) });
  });

  it('reports a waiting job as queued before running', () => {
    const statuses = updates.updates.filter((u) => u.jobId === ids[5]).map((u) => u.status);
    expect(statuses.indexOf('queued')).toBeLessThan(statuses.indexOf('running'));
  });
});

describe('drain() at shutdown, with four jobs running and two waiting', () => {
  let bot: App;
  let ids: string[];
  let finals: Map<string, JobUpdate>;
  let late: CommandReply;
  beforeAll(async () => {
    bot = await makeTestBot({ batchSize: 1, engine: { delayMs: 300 } });
    const updates = collectUpdates(bot);
    ids = await editsFromUsers(bot, 6, 'smile'); // four run at once (one at a time in the engine); the last two wait
    expect((await bot.queue.inFlight()).filter((j) => j.state === 'active')).toHaveLength(4);
    await bot.drain();
    finals = new Map(updates.finals().map((u) => [u.jobId, u]));
    late = await edit(bot, 'smile', ctxFor('late'));
  });
  afterAll(() => bot.close());

  it('lets the running jobs finish and deliver', () => {
    expect(ids.slice(0, 4).map((id) => finals.get(id)?.status)).toEqual(['completed', 'completed', 'completed', 'completed']);
  });

  it('fails the waiting jobs with a message', () => {
    expect(ids.slice(4).map((id) => finals.get(id)?.text)).toEqual([LOST_IN_RESTART, LOST_IN_RESTART]);
  });

  it('refuses new jobs', () => {
    expect(late).toMatchObject({ error: true, text: RESTARTING });
  });

  it('leaves nothing in the queue', async () => {
    expect(await bot.queue.inFlight()).toEqual([]);
  });
});

describe('a server switched to a named pack from STYLECLIP_PACKS_DIR', () => {
  let bot: App;
  let set: CommandReply;
  let done: JobUpdate;
  beforeAll(async () => {
    const packsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'styleclip-packs-'));
    fs.renameSync(makeTestPack('ignored', { mappers: [] }), path.join(packsDir, 'plain'));
    bot = await makeTestBot({ packsDir });
    const updates = collectUpdates(bot);
    set = await adminSays(bot, 'set pack plain');
    done = await updates.final((await edit(bot, 'curly hair seed:1')).job!.id);
  });
  afterAll(() => bot.close());

  it('is set by an admin, by the pack’s folder name', () => {
    expect(set.text).toMatch(/^Set pack\.\npack: plain/);
  });

  it('plans edits with that pack’s mappers: none, so auto picks global', async () => {
    expect((await jobData(bot, done.jobId))?.spec.method).toBe('global');
  });

  it('runs its jobs on that pack', async () => {
    expect(done.status).toBe('completed');
    expect((await jobData(bot, done.jobId))?.pack).toBe('plain');
  });
});

describe('running caps, held in the worker (300 ms per job)', () => {
  let bot: App;
  let updates: ReturnType<typeof collectUpdates>;
  beforeAll(async () => {
    bot = await makeTestBot({ batchSize: 8, batchWindowMs: 30, engine: { delayMs: 300 } }); // without the caps, these would share batches
    updates = collectUpdates(bot);
  });
  afterAll(() => bot.close());

  const submit = async (user: string, text: string) => (await edit(bot, text, ctxFor(user))).job!.id;
  /** When each job really ran: from passing its caps to its result. */
  const spans = (ids: string[]) =>
    Promise.all(
      ids.map(async (id) => {
        expect((await updates.final(id)).status).toBe('completed');
        const meta = (await resultMeta(bot, id))!;
        const data = (await jobData(bot, id))!;
        return [data.submittedAt + meta.timings.queueMs, meta.completedAt] as const;
      }),
    );
  const overlap = (a: readonly number[], b: readonly number[]) => a[0] < b[1] && b[0] < a[1];
  const anyOverlap = (xs: (readonly number[])[]) => xs.some((a, i) => xs.some((b, j) => i < j && overlap(a, b)));

  describe('user-running 1', () => {
    let alice: string[];
    let aliceSpans: (readonly number[])[];
    let bobSpan: readonly number[];
    beforeAll(async () => {
      await adminSays(bot, 'set user-running 1');
      alice = [await submit('alice', 'smile a1'), await submit('alice', 'smile a2'), await submit('alice', 'smile a3')];
      const bob = await submit('bob', 'smile b1');
      aliceSpans = await spans(alice);
      [bobSpan] = await spans([bob]);
    });

    it('runs a user’s jobs one at a time', () => {
      expect(anyOverlap(aliceSpans)).toBe(false);
    });

    it('lets another user’s job go ahead of that user’s queue', () => {
      expect(aliceSpans.some((s) => overlap(s, bobSpan))).toBe(true);
    });

    it('makes a job over the cap wait for a slot rather than fail', () => {
      expect(updates.updates.filter((u) => alice.includes(u.jobId) && u.status === 'failed')).toEqual([]);
    });

    it('counts the postponements by the user cap', async () => {
      expect(await bot.metricsText()).toMatch(/styleclip_jobs_postponed_total\{cap="user"\} [1-9]/);
    });
  });

  describe('server-running 1', () => {
    let spansAcrossUsers: (readonly number[])[];
    beforeAll(async () => {
      await adminSays(bot, 'set user-running 3');
      await adminSays(bot, 'set server-running 1');
      spansAcrossUsers = await spans([await submit('carol', 'smile c1'), await submit('dave', 'smile d1'), await submit('carol', 'smile c2')]);
    });

    it('runs the server’s jobs one at a time, whoever asked', () => {
      expect(anyOverlap(spansAcrossUsers)).toBe(false);
    });

    it('counts the postponements by the server cap', async () => {
      expect(await bot.metricsText()).toMatch(/styleclip_jobs_postponed_total\{cap="server"\} [1-9]/);
    });
  });

  it('server-running 0 pauses edits: they are refused at submission, nothing is queued', async () => {
    await adminSays(bot, 'set server-running 0'); // a job accepted now would never run
    expect(await edit(bot, 'smile', ctxFor('erin'))).toMatchObject({ error: true, text: 'Edits are paused on this server (an admin set server-running to 0).' });
    expect(await bot.queue.inFlight()).toEqual([]);
  });
});

describe('pack catalog', () => {
  let packsDir: string;
  let catalog: PackCatalog;
  beforeEach(() => {
    packsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'styleclip-packs-'));
    fs.renameSync(makeTestPack('ignored'), path.join(packsDir, 'plain'));
    catalog = new PackCatalog(makeTestPack('main'), packsDir);
  });

  it('finds a named pack by its folder', () => {
    expect(catalog.get('plain')).toMatchObject({ name: 'plain', dir: path.join(packsDir, 'plain'), mappers: [{ slug: 'curly_hair' }] });
  });

  it('sees a change to its pack.json', () => {
    catalog.get('plain');
    const file = path.join(packsDir, 'plain', 'pack.json');
    fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), mappers: [] }));
    fs.utimesSync(file, new Date(), new Date(Date.now() + 60_000)); // a new mtime, whatever the clock's resolution
    expect(catalog.get('plain')?.mappers).toEqual([]);
  });

  it('never leaves STYLECLIP_PACKS_DIR, and knows no other name', () => {
    for (const name of ['..', '.', '../plain', 'plain/', 'nope']) expect(catalog.get(name), name).toBeUndefined();
  });

  it('gives the default pack for no name', () => {
    expect(catalog.get(null)?.name).toBe('main');
  });

  it('lists the default pack, then the named ones', () => {
    expect(catalog.list().map((p) => p.name)).toEqual(['main', 'plain']);
  });
});

describe('bot core start-up', () => {
  it('fails with the engine\'s message when the pack cannot be opened, leaving nothing running', async () => {
    const packDir = makeTestPack('testpack', { fakeEngine: { openFails: true } });
    await expect(makeTestBot({ packDir })).rejects.toThrow(`pack ${packDir} is broken`);
  });

  it('names the missing pack.json and how to make one', async () => {
    await expect(makeTestBot({ packDir: '/nonexistent/pack' })).rejects.toThrow(
      'no model pack at /nonexistent/pack (pack.json not found); build one with: npm run toolkit -- tiny-pack --out /nonexistent/pack',
    );
  });
});

describe('bot core on Redis: server settings across a restart', () => {
  const prefix = uniquePrefix('core');
  let restarted: App;
  beforeAll(async () => {
    const first = await makeTestBot({ redisUrl: REDIS, prefix, worker: false });
    await adminSays(first, 'set strength-default 2.5');
    await first.close();
    restarted = await makeTestBot({ redisUrl: REDIS, prefix, worker: false });
  });
  afterAll(async () => {
    await restarted.close();
    await dropPrefix(REDIS, prefix);
  });

  it('are kept', async () => {
    const show = await restarted.invoke('styleclip-admin', { kind: 'text', text: 'show' }, ctxFor('anyone'), targetFor(ctxFor('anyone')));
    expect(show.text).toContain('strength: -10 to 10, default 2.5');
  });

  it('keep their audit log', async () => {
    expect((await adminSays(restarted, 'log')).text).toMatch(/root: set strength-default = 2\.5/);
  });
});
