// An admin trains a server's own mapper from chat (`/styleclip-admin train-mapper`): the rules of a training, the
// command's refusals (one line each, nothing queued), one training per server, cancelling, and end to end on the
// real toolkit: progress with previews, the mapper in the server's view, and a user's next /styleclip using it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TRAIN_STEPS, parseLevels, planTraining } from '../src/core/plan-training.ts';
import { describeProgress } from '../src/core/captions.ts';
import { parseInput } from '../src/core/parse.ts';
import { repliesPublicly } from '../src/core/types.ts';
import type { PackSummary } from '../src/engine/types.ts';
import { applySetting, DEFAULT_SETTINGS, TRAIN_STEPS_LIMIT, type ServerSettings } from '../src/state/settings.ts';
import { advertise, capableWorker, type Advertisement } from '../src/state/capabilities.ts';
import { PackCatalog } from '../src/engine/catalog.ts';
import { getJSON } from '../src/state/store.ts';
import { keys } from '../src/state/keys.ts';
import type { EditJobData, ResultMeta } from '../src/jobs/types.ts';
import { createApp, type App } from '../src/runtime/app.ts';
import admin from '../commands/styleclip-admin.ts';
import { collectUpdates, ctxFor, makeTestBot, targetFor, testAppOptions, tinyPackDir, packSummary, waitExit } from './helpers/core-bot.ts';
import { childrenOf, Deployments, isFinal, waitGradientLane } from './helpers/deployment.ts';

const pack = (extra: Partial<PackSummary> = {}) => packSummary({ mappers: [{ name: 'curly hair', slug: 'curly_hair' }], identity: true, ...extra });
const settings = (patch: Partial<ServerSettings> = {}): ServerSettings => ({ ...DEFAULT_SETTINGS, ...patch });
const ALL = { coarse: true, medium: true, fine: true };

describe('planning a mapper training', () => {
  it('defaults: min(10000, train-steps-max) steps, all levels, the official ID weight 0.1 when the pack has ArcFace', () => {
    expect(planTraining(settings(), pack(), { prompt: '  pixie   cut ' })).toEqual({
      spec: { method: 'train-mapper', prompt: 'pixie cut', steps: DEFAULT_TRAIN_STEPS, levels: ALL, idLambda: 0.1 },
    });
    expect(planTraining(settings({ trainStepsMax: 500 }), pack(), { prompt: 'pixie cut' })).toMatchObject({ spec: { steps: 500 } });
    // No ArcFace weights: trained without the ID term rather than refused (the caption says so).
    expect(planTraining(settings(), pack({ identity: false }), { prompt: 'pixie cut', steps: 20, levels: 'coarse+medium' })).toMatchObject({
      spec: { steps: 20, levels: { coarse: true, medium: true, fine: false }, idLambda: 0 },
    });
  });

  it('a server may retrain its own mapper (it is replaced), never one the pack has', () => {
    const view = pack({ mappers: [{ name: 'curly hair', slug: 'curly_hair' }, { name: 'pixie cut', slug: 'pixie_cut', server: true }] });
    expect(planTraining(settings(), view, { prompt: 'Pixie Cut' })).toMatchObject({ spec: { prompt: 'Pixie Cut' } });
    expect(planTraining(settings(), view, { prompt: 'curly hair' })).toEqual({ refusal: 'Pack "p" already has a mapper for "curly hair"; /styleclip curly hair uses it.' });
  });

  it('refuses with one line: empty, no letter a–z, blocked word, steps out of range, unknown levels', () => {
    const refusal = (patch: Partial<ServerSettings>, req: Parameters<typeof planTraining>[2]) => {
      const plan = planTraining(settings(patch), pack(), req);
      return 'refusal' in plan ? plan.refusal : null;
    };
    expect(refusal({}, { prompt: '  ' })).toBe('Give the text the mapper should follow, e.g. "pixie cut".');
    expect(refusal({}, { prompt: '!!' })).toBe('Give the text the mapper should follow, e.g. "pixie cut".');
    expect(refusal({}, { prompt: 'ショートヘア' })).toMatch(/at least one letter a–z or digit/);
    expect(refusal({ blockedWords: ['pixie'] }, { prompt: 'Pixie cut' })).toBe('The prompt contains a word that is blocked on this server.');
    expect(refusal({ trainStepsMax: 100 }, { prompt: 'x', steps: 101 })).toBe('steps must be a whole number from 1 to 100 on this server (train-steps-max), got 101.');
    expect(refusal({}, { prompt: 'x', steps: 0 })).toMatch(/^steps must be a whole number from 1 to 50000/);
    expect(refusal({}, { prompt: 'x', steps: 2.5 })).toMatch(/^steps must be a whole number/);
    expect(refusal({}, { prompt: 'x', levels: 'coarse+hair' })).toBe('levels must be "all" or coarse, medium, fine joined by + (e.g. coarse+medium), got "coarse+hair".');
  });

  it('levels: "all", names joined by + or commas, any order', () => {
    expect(parseLevels(undefined)).toEqual(ALL);
    expect(parseLevels('ALL')).toEqual(ALL);
    expect(parseLevels('fine, coarse')).toEqual({ coarse: true, medium: false, fine: true });
    expect(parseLevels('medium')).toEqual({ coarse: false, medium: true, fine: false });
  });

  it('admin setting train-steps-max: a whole number from 1 to the toolkit bound', () => {
    const catalog = {} as PackCatalog;
    expect(applySetting(settings(), 'train-steps-max', '2000', catalog).trainStepsMax).toBe(2000);
    expect(() => applySetting(settings(), 'train-steps-max', '0', catalog)).toThrow(`train-steps-max must be a whole number from 1 to ${TRAIN_STEPS_LIMIT}.`);
    expect(() => applySetting(settings(), 'train-steps-max', String(TRAIN_STEPS_LIMIT + 1), catalog)).toThrow(/from 1 to/);
  });

  it('the progress line names the step and the losses', () => {
    const spec = { method: 'train-mapper' as const, prompt: 'pixie cut', steps: 400, levels: { coarse: true, medium: true, fine: false }, idLambda: 0.1 };
    expect(describeProgress(spec, 30, { step: 120, steps: 400, loss: 0.81234, clip: 0.74119 })).toBe(
      'Running mapper training **pixie cut** · 400 steps · coarse+medium… step 120 of 400 · loss 0.8123 (CLIP 0.7412) · 30%',
    );
    expect(describeProgress(spec, 5, null)).toBe('Running mapper training **pixie cut** · 400 steps · coarse+medium… 5%');
  });

  it('the text form takes the prompt as free text; the sub-command replies in the channel', () => {
    expect(parseInput(admin.definition, { kind: 'text', text: 'train-mapper pixie cut steps:20 levels:coarse+medium' })).toEqual({
      subcommand: 'train-mapper',
      options: { prompt: 'pixie cut', steps: 20, levels: 'coarse+medium' },
    });
    expect(repliesPublicly(admin.definition, 'train-mapper')).toBe(true);
    expect(repliesPublicly(admin.definition, 'show')).toBe(false);
  });
});

describe('/styleclip-admin train-mapper and train-cancel (no training worker takes the job)', () => {
  let bot: App;
  let ad: Advertisement | null = null;
  const root = ctxFor('root', { isPlatformAdmin: true });
  const say = (text: string, ctx = root) => bot.invoke('styleclip-admin', { kind: 'text', text }, { ...ctx, requestId: `${ctx.requestId}-${Math.random()}` }, targetFor(ctx));
  beforeAll(async () => {
    bot = await makeTestBot();
  });
  afterEach(async () => {
    await ad?.stop();
    ad = null;
  });
  afterAll(() => bot?.close());

  it('admins only; per server; refused at once while no worker can train', async () => {
    expect(await say('train-mapper pixie cut', ctxFor('bob'))).toMatchObject({ error: true, text: 'Only server admins can change StyleCLIP settings.' });
    expect(await say('train-mapper pixie cut', ctxFor('root', { isPlatformAdmin: true, serverId: null }))).toMatchObject({ error: true, text: expect.stringContaining('per server') });
    expect(await say('train-mapper pixie cut')).toMatchObject({ error: true, text: expect.stringMatching(/^No worker that can train mappers is running now/) });
    expect(await bot.queue.inFlight()).toEqual([]);
  });

  it('queues one training per server, outside the edit caps; train-cancel ends it and frees the server', async () => {
    ad = advertise(bot.store, 'train-mapper', { worker: 'w', device: 'cuda', torch: 'test' });
    const updates = collectUpdates(bot);
    const queued = await say('train-mapper pixie cut steps:300 levels:coarse+medium');
    expect(queued.error).toBeFalsy();
    expect(queued.ephemeral).toBeFalsy(); // posted where it was asked: its progress follows there
    expect(queued.text).toMatch(/^Queued mapper training \*\*pixie cut\*\* · 300 steps · coarse\+medium — position 1\. Job /);
    const data = await getJSON<EditJobData>(bot.store, keys.job(queued.job!.id));
    expect(data).toMatchObject({ scope: 'playground:s1', requesterId: 'root', spec: { method: 'train-mapper', prompt: 'pixie cut', steps: 300, idLambda: 0 } });
    expect((await say('log')).text).toContain(`root: train mapper "pixie cut" (300 steps, job ${queued.job!.id})`);

    // A second one on the same server, by anyone: refused, naming the first.
    const other = ctxFor('ada', { isPlatformAdmin: true });
    expect(await say('train-mapper blue eyes', other)).toMatchObject({
      error: true,
      text: `This server is already training a mapper ("pixie cut", job ${queued.job!.id}); wait for it to finish, or stop it with /styleclip-admin train-cancel.`,
    });
    // Another server trains its own.
    const elsewhere = await say('train-mapper blue eyes steps:5', ctxFor('root', { isPlatformAdmin: true, serverId: 's2' }));
    expect(elsewhere.job).toBeDefined();

    // The training holds no edit slot: with room for one job, the admin still edits.
    await say('set user-waiting 0');
    await say('set user-running 1');
    const edit = await bot.invoke('styleclip', { kind: 'text', text: 'curly hair seed:1' }, root, targetFor(root));
    expect(edit.error).toBeFalsy();
    expect((await updates.final(edit.job!.id)).status).toBe('completed');
    await say('reset all');

    // ➕ on a training's message: one line, nothing queued.
    expect(await bot.nudge(queued.job!.id, 'stronger', 'root', 'press-1', targetFor(root), 'button')).toMatchObject({
      error: true,
      text: 'Nudges do not apply to a mapper training; try the mapper with /styleclip pixie cut.',
    });

    expect(await say('train-cancel', other)).toMatchObject({ text: `Cancelled the training of "pixie cut" (job ${queued.job!.id}).` });
    expect((await updates.final(queued.job!.id)).status).toBe('cancelled');
    expect(await say('train-cancel')).toMatchObject({ error: true, text: 'No mapper training is running or waiting on this server.' });
    expect((await say('train-mapper blue eyes steps:5')).job).toBeDefined();
  });
});

// ---- End to end on the real toolkit (PyTorch) and engine, the tiny pack, in one process ----

describe('mapper training end to end (embedded, real toolkit on the tiny pack)', () => {
  let bot: App;
  let dataDir: string;
  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'styleclip-train-chat-'));
    bot = await createApp(testAppOptions({ packDir: tinyPackDir(), dataDir, batchWindowMs: 2, optimize: 'on' }));
  }, 120_000);
  afterAll(async () => {
    await bot?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('an admin trains a mapper with progress and a preview; /styleclip-help lists it and a user\'s /styleclip uses it', async () => {
    const updates = collectUpdates(bot);
    const root = ctxFor('root', { isPlatformAdmin: true });
    const queued = await bot.invoke('styleclip-admin', { kind: 'text', text: 'train-mapper pixie cut steps:12 levels:coarse+medium' }, root, targetFor(root));
    expect(queued.error, queued.text).toBeFalsy();
    const jobId = queued.job!.id;
    const final = await updates.final(jobId, 240_000);
    expect(final.status, final.text).toBe('completed');
    expect(final.text).toMatch(/^Trained mapper \*\*pixie cut\*\* for this server · 12 steps · loss \d\.\d{4} \(CLIP \d\.\d{4}\) · [\d.]+ s on cpu · job /);
    expect(final.text).toContain('Try it: /styleclip pixie cut.');
    expect(final.actions).toEqual([]);

    // Progress: the step and losses, and a preview image (the sample face before → after, 2 × 64 px here).
    const running = updates.updates.filter((u) => u.jobId === jobId && u.status === 'running');
    expect(running.some((u) => /step \d+ of 12 · loss \d\.\d{4} \(CLIP \d\.\d{4}\)/.test(u.text ?? ''))).toBe(true);
    expect(running.some((u) => u.preview)).toBe(true);
    const image = await bot.resultImage(jobId);
    expect(image?.bytes.subarray(1, 4).toString()).toBe('PNG');
    expect([image!.bytes.readUInt32BE(16), image!.bytes.readUInt32BE(20)]).toEqual([128, 64]);
    expect(await bot.store.get(keys.preview(jobId))).toBeNull(); // progress records go with the run

    expect(await bot.metricsText()).toMatch(/^styleclip_gradient_run_seconds_count\{method="train-mapper"\} 1$/m);

    // The mapper is the server's: in its folder beside the read-only pack, no checkpoint left behind.
    const folder = path.join(dataDir, 'mappers', 'playground_s1', 'tiny');
    expect(fs.readdirSync(path.join(folder, 'mappers')).sort()).toEqual(['pixie_cut.onnx']);
    expect(fs.existsSync(path.join(tinyPackDir(), 'mappers', 'pixie_cut.onnx'))).toBe(false);

    const bob = ctxFor('bob');
    expect((await bot.invoke('styleclip-help', { kind: 'text', text: '' }, bob, targetFor(bob))).text).toContain("pixie cut (this server's)");
    const edit = await bot.invoke('styleclip', { kind: 'text', text: 'pixie cut seed:2' }, bob, targetFor(bob));
    expect(edit.text).toMatch(/^Queued \*\*pixie cut\*\* · mapper/);
    expect((await updates.final(edit.job!.id, 60_000)).status).toBe('completed');
    const meta = await getJSON<ResultMeta>(bot.store, keys.resultMeta(edit.job!.id));
    expect(meta?.info).toMatchObject({ method: 'mapper', mapper: 'pixie_cut' });
    // Another server does not have it.
    const carol = ctxFor('carol', { serverId: 's2' });
    expect((await bot.invoke('styleclip', { kind: 'text', text: 'pixie cut method:mapper' }, carol, targetFor(carol))).text).toMatch(/has no mapper for "pixie cut"/);
  }, 300_000);
});

describe('a worker with STYLECLIP_TRAIN=off (real PyTorch probe)', () => {
  it('takes optimize jobs but no trainings: the command says so at once', async () => {
    const bot = await createApp(testAppOptions({ packDir: tinyPackDir(), optimize: 'on', train: false }));
    try {
      expect(bot.gradients()).toMatchObject({ optimize: 'on', training: 'off' });
      expect(await capableWorker(bot.store, 'optimize')).not.toBeNull();
      expect(await capableWorker(bot.store, 'train-mapper')).toBeNull();
      const root = ctxFor('root', { isPlatformAdmin: true });
      const reply = await bot.invoke('styleclip-admin', { kind: 'text', text: 'train-mapper pixie cut' }, root, targetFor(root));
      expect(reply).toMatchObject({ error: true, text: expect.stringMatching(/^No worker that can train mappers is running now/) });
    } finally {
      await bot.close();
    }
  }, 120_000);
});

// ---- End to end with real processes: the playground bot and workers on Redis, a worker dying mid-training ----

describe('mapper training end to end (playground, Redis, styleclip workers)', () => {
  const deployments = new Deployments();
  let dataDir: string;
  beforeAll(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'styleclip-train-e2e-'));
  });
  afterEach(() => deployments.cleanup());
  afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  it('a worker SIGKILLed mid-training: the next resumes from the checkpoint and the admin gets one reply; ❌ stops one and keeps nothing', async () => {
    const d = await deployments.start('train-kill', { env: { STYLECLIP_DATA_DIR: dataDir } });
    await waitGradientLane(d.worker, 'mapper training');
    const folder = path.join(dataDir, 'mappers', 'playground_playground', 'tiny', 'mappers');
    const checkpoint = path.join(folder, 'pixie_cut.train.npz');

    const queued = await d.post('/styleclip-admin train-mapper pixie cut steps:200', 'admin');
    expect(queued.text).toMatch(/mapper training \*\*pixie cut\*\* · 200 steps · all levels/); // queued, or already running
    // Killed once a checkpoint exists (one every 10 steps here) and the admin has seen a step.
    await d.reply(queued.id, (m) => /step \d+ of 200/.test(m.text ?? '') && fs.existsSync(checkpoint), 'a checkpoint', 240_000);
    expect(childrenOf(d.worker.pid!)).toHaveLength(1);
    d.worker.kill('SIGKILL');
    await waitExit(d.worker);

    const second = await d.startWorker();
    const done = await d.reply(queued.id, isFinal, 'the resumed training', 400_000);
    expect(done.status, done.text).toBe('completed');
    expect(done.text).toMatch(/^Trained mapper \*\*pixie cut\*\* for this server · 200 steps \(continued from step [1-9]\d*\)/);
    expect(fs.readdirSync(folder).sort()).toEqual(['pixie_cut.onnx']); // the checkpoint is gone with the run
    await new Promise((r) => setTimeout(r, 500)); // a duplicate reply would arrive now
    expect(await (await fetch(`${d.bot.url}/metrics`)).text()).toMatch(/styleclip_jobs_total\{status="completed"\} 1\n/);

    // The user's next /styleclip uses it.
    const edit = await d.post('/styleclip pixie cut seed:4', 'bob');
    const edited = await d.reply(edit.id, isFinal, 'the mapper edit');
    expect(edited.status, edited.text).toBe('completed');
    expect(edited.text).toMatch(/\*\*pixie cut\*\* · mapper · .*mapper pixie_cut/);

    // ❌ by the admin mid-way: cancelled, the PyTorch process gone, no checkpoint or mapper left for it.
    const long = await d.post('/styleclip-admin train-mapper blue eyes steps:5000', 'admin');
    await d.reply(long.id, (m) => /step \d+ of 5000/.test(m.text ?? ''), 'a step');
    expect((await d.react(long.id, '❌', 'admin')).json.ok).toBe(true);
    expect((await d.reply(long.id, isFinal, 'the cancel')).status).toBe('cancelled');
    expect(childrenOf(second.pid!)).toEqual([]);
    expect(fs.readdirSync(folder).sort()).toEqual(['pixie_cut.onnx']);
    expect((await d.post('/styleclip-admin mappers', 'admin')).text).toContain("This server's mappers for pack tiny: pixie cut (pixie_cut).");
  }, 600_000);
});
