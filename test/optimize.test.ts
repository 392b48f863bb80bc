// method:optimize served: the planning rules (steps, on/off, λ's, ➕/➖ on the L2 pull), the admin settings, the
// lanes, and end to end in the playground with Redis and real `styleclip bot` / `styleclip worker` processes
// running the toolkit's PyTorch loop on the tiny pack: progress previews, a result, a worker SIGKILLed mid-run
// (rerun, one reply), ❌ mid-run, and bad input (unknown pack, steps out of range, no PyTorch, a malicious
// ArcFace pickle), each a one-line message with nothing lost.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { planEdit } from '../src/core/plan-edit.ts';
import { nudgedL2 } from '../src/core/plan-optimize.ts';
import { describeSpec } from '../src/core/captions.ts';
import { applySetting, DEFAULT_SETTINGS, type ServerSettings } from '../src/state/settings.ts';
import { PackCatalog } from '../src/engine/catalog.ts';
import { LaneQueue, laneOf } from '../src/jobs/lanes.ts';
import { MemoryQueue } from '../src/jobs/memory-queue.ts';
import type { EditJobData } from '../src/jobs/types.ts';
import { getJSON, MemoryStore, type Store } from '../src/state/store.ts';
import { Metrics } from '../src/metrics.ts';
import { startOptimizeLane } from '../src/worker/optimize-lane.ts';
import { keys } from '../src/state/keys.ts';
import { advertise, capableWorker } from '../src/state/capabilities.ts';
import { startDiscordAdapter } from '../src/adapters/discord/index.ts';
import type { ResultImage } from '../src/core/types.ts';
import pino from 'pino';
import { FakeDiscord } from './fakes/discord/fake-discord.ts';
import { StubCore } from './fakes/discord/stub-core.ts';
import { collectUpdates, ctxFor, makeTestBot, targetFor, tinyPackDir, packSummary, waitExit } from './helpers/core-bot.ts';
import { api, childrenOf, Deployments, waitFor, waitGradientLane, type Proc } from './helpers/deployment.ts';

const ROOT = path.resolve(import.meta.dirname, '..');

const pack = packSummary;
const settings = (patch: Partial<ServerSettings> = {}): ServerSettings => ({ ...DEFAULT_SETTINGS, ...patch });

describe('planning an optimization', () => {
  it('takes steps within the server bound (default min(300, bound)) and the λs from the settings', () => {
    expect(planEdit(settings(), pack(), 'c', { prompt: 'purple hair', method: 'optimize' })).toEqual({
      spec: { method: 'optimize', prompt: 'purple hair', steps: 300, l2Lambda: 0.008, idLambda: 0 },
    });
    const s = settings({ optimizeStepsMax: 120, optimizeL2: 0.02, optimizeId: 0.005 });
    expect(planEdit(s, pack({ identity: true }), 'c', { prompt: 'x', method: 'optimize' })).toEqual({
      spec: { method: 'optimize', prompt: 'x', steps: 120, l2Lambda: 0.02, idLambda: 0.005 },
    });
    expect(planEdit(s, pack({ identity: true }), 'c', { prompt: 'x', method: 'optimize', steps: 40 })).toMatchObject({ spec: { steps: 40 } });
  });

  it('refuses with one line: steps out of range, turned off, options of other methods, ID loss without ArcFace, steps without optimize', () => {
    const refusal = (s: ServerSettings, req: Parameters<typeof planEdit>[3], p = pack()) => {
      const plan = planEdit(s, p, 'c', req);
      expect('refusal' in plan).toBe(true);
      return (plan as { refusal: string }).refusal;
    };
    expect(refusal(settings(), { prompt: 'x', method: 'optimize', steps: 301 })).toBe('steps must be a whole number from 1 to 300 on this server, got 301.');
    expect(refusal(settings(), { prompt: 'x', method: 'optimize', steps: 0 })).toMatch(/from 1 to 300/);
    expect(refusal(settings({ optimize: false }), { prompt: 'x', method: 'optimize' })).toMatch(/turned off on this server.*set optimize on/);
    expect(refusal(settings(), { prompt: 'x', method: 'optimize', strength: 3 })).toMatch(/do not apply to method:optimize/);
    expect(refusal(settings({ optimizeId: 0.005 }), { prompt: 'x', method: 'optimize' })).toMatch(/no ArcFace weights/);
    expect(refusal(settings(), { prompt: 'x', method: 'global', steps: 10 })).toBe('steps applies to method:optimize only.');
    // The rules every edit shares come first.
    expect(refusal(settings({ blockedWords: ['purple'] }), { prompt: 'purple hair', method: 'optimize' })).toMatch(/blocked/);
    expect(refusal(settings({ channels: ['other'] }), { prompt: 'x', method: 'optimize' })).toMatch(/not enabled in this channel/);
  });

  it('➕ weakens the pull toward the start (L2 ÷ 1.5), ➖ strengthens it (× 1.5)', () => {
    expect(nudgedL2(0.008, 'stronger')).toBe(0.005333);
    expect(nudgedL2(0.008, 'weaker')).toBe(0.012);
    expect(nudgedL2(0, 'stronger')).toBe(0);
    expect(describeSpec({ method: 'optimize', prompt: 'purple hair', steps: 40, l2Lambda: 0.008, idLambda: 0 })).toBe('**purple hair** · optimize · 40 steps · l2 0.008');
  });

  it('admin settings: optimize on|off, optimize-steps-max, optimize-l2, optimize-id, each checked', () => {
    const packs = new PackCatalog(tinyPackDir());
    let s = applySetting(DEFAULT_SETTINGS, 'optimize', 'off', packs);
    expect(s.optimize).toBe(false);
    s = applySetting(s, 'optimize-steps-max', '50', packs);
    s = applySetting(s, 'optimize-l2', '0.02', packs);
    s = applySetting(s, 'optimize-id', '0.005', packs);
    expect(s).toMatchObject({ optimize: false, optimizeStepsMax: 50, optimizeL2: 0.02, optimizeId: 0.005 });
    expect(() => applySetting(s, 'optimize', 'maybe', packs)).toThrow('optimize must be on or off.');
    expect(() => applySetting(s, 'optimize-steps-max', '0', packs)).toThrow(/from 1 to 2000/);
    expect(() => applySetting(s, 'optimize-steps-max', '2.5', packs)).toThrow(/whole number/);
    expect(() => applySetting(s, 'optimize-l2', '-1', packs)).toThrow(/from 0 to 10/);
    expect(() => applySetting(s, 'optimize-id', 'lots', packs)).toThrow(/must be a number/);
  });
});

describe('lanes and capabilities', () => {
  const job = (id: string, method: 'global' | 'optimize' | 'train-mapper'): EditJobData => ({
    jobId: id,
    platform: 'playground',
    scope: 'playground:s',
    requesterId: 'u',
    target: { platform: 'playground', channelId: 'c' },
    pack: 'p',
    spec:
      method === 'optimize'
        ? { method, prompt: 'x', steps: 1, l2Lambda: 0, idLambda: 0 }
        : method === 'train-mapper'
          ? { method, prompt: 'x', steps: 1, levels: { coarse: true, medium: true, fine: true }, idLambda: 0 }
          : { method, prompt: 'x', strength: 1 },
    source: { kind: 'seed', seed: 1 },
    submittedAt: 0,
  });

  it('optimize jobs go to the gradient lane, trainings to the training lane, each taken only by its own processor; the bot sees one queue', async () => {
    const queue = new LaneQueue(() => new MemoryQueue());
    expect(laneOf(job('a', 'optimize'))).toBe('gradient');
    expect(laneOf(job('a', 'train-mapper'))).toBe('training');
    await queue.add(job('e1', 'global'));
    await queue.add(job('g1', 'optimize'));
    await queue.add(job('t1', 'train-mapper'));
    expect((await queue.inFlight()).map((j) => j.id)).toEqual(['e1', 'g1', 't1']);
    const seen: string[] = [];
    const edits = queue.process(async (j) => void seen.push(`edit:${j.id}`), 1);
    await new Promise((r) => setTimeout(r, 20));
    expect(seen).toEqual(['edit:e1']); // the edit worker never touched g1 or t1
    expect((await queue.inFlight()).map((j) => j.id)).toEqual(['g1', 't1']);
    const gradients = queue.process(async (j) => void seen.push(`gradient:${j.id}`), 1, 'gradient');
    await new Promise((r) => setTimeout(r, 20));
    expect(seen).toEqual(['edit:e1', 'gradient:g1']); // an optimization does not wait behind a training
    const training = queue.process(async (j) => void seen.push(`training:${j.id}`), 1, 'training');
    await new Promise((r) => setTimeout(r, 20));
    expect(seen).toEqual(['edit:e1', 'gradient:g1', 'training:t1']);
    await Promise.all([edits.close(), gradients.close(), training.close()]);
    await queue.close();
  });

  it("a job's status is found in whichever lane holds it (the watchdog does not take a gradient job for lost)", async () => {
    const queue = new LaneQueue(() => new MemoryQueue());
    await queue.add(job('e1', 'global'));
    await queue.add(job('g1', 'optimize'));
    await queue.add(job('t1', 'train-mapper'));
    expect(await queue.status('e1')).toEqual({ state: 'pending' });
    expect(await queue.status('g1')).toEqual({ state: 'pending' });
    expect(await queue.status('t1')).toEqual({ state: 'pending' });
    expect(await queue.status('nope')).toEqual({ state: 'missing' });
    await queue.close();
  });

  it('an optimize job meeting a Redis outage past REDIS_OUTAGE_MS goes back to its queue with no try spent', async () => {
    const store = new MemoryStore();
    let down = true;
    const refused = () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    const flaky: Store = {
      get: (key) => (down ? refused() : store.get(key)),
      set: (key, value, ttlS) => store.set(key, value, ttlS),
      setNX: (key, value, ttlS) => store.setNX(key, value, ttlS),
      del: (...k) => store.del(...k),
      push: (key, value, max, ttlS) => store.push(key, value, max, ttlS),
      list: (key, count) => store.list(key, count),
      ready: () => store.ready(),
      close: () => store.close(),
    };
    const queue = new MemoryQueue();
    const metrics = new Metrics();
    const events: string[] = [];
    queue.onEvent((e) => void events.push(`${e.type}:${e.jobId}`));
    const lane = startOptimizeLane({
      queue,
      store: flaky,
      packs: new PackCatalog(tinyPackDir()),
      metrics,
      log: pino({ level: 'silent' }),
      device: 'cpu',
      resultTtlS: 60,
      outageMs: 200,
      budgetS: 10,
      torch: { ok: true, python: 'python3', torch: 'test', cuda: false },
      checkRunningCaps: async () => {},
    });
    try {
      await queue.add(job('g1', 'optimize'));
      await waitFor('the job handed back', async () => ((await metrics.text()).includes('styleclip_jobs_ridden_out_total{outcome="handed_back"}') ? true : undefined));
      down = false;
      expect(events.filter((e) => e.startsWith('failed'))).toEqual([]);
      expect(await metrics.text()).not.toMatch(/styleclip_job_failures_total\{/);
    } finally {
      down = false;
      await store.set(keys.cancel('g1'), '1'); // what is left of it ends at its next start
      await lane.close();
      await queue.close();
    }
  });

  it('a capable worker keeps its record alive while it runs and removes it when it stops', async () => {
    const store = new MemoryStore();
    expect(await capableWorker(store, 'optimize')).toBeNull();
    const ad = advertise(store, 'optimize', { worker: 'w1', device: 'cpu', torch: '2.x' }, 50);
    await new Promise((r) => setTimeout(r, 120));
    expect(await capableWorker(store, 'optimize')).toMatchObject({ worker: 'w1', device: 'cpu' });
    await ad.stop();
    expect(await capableWorker(store, 'optimize')).toBeNull();
    await store.close();
  });
});

// ---- End to end: playground (styleclip bot) + styleclip worker on Redis, the real toolkit on the tiny pack ----

const waitOptimizer = (worker: Proc) => waitGradientLane(worker, 'optimization');

describe('method:optimize end to end (playground, Redis, styleclip worker)', () => {
  const deployments = new Deployments();
  let packsDir: string;
  let botPacksDir: string;
  beforeAll(() => {
    // The bot knows a pack "extra" that the worker does not have (an unknown pack, seen from the worker).
    packsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'styleclip-opt-packs-'));
    botPacksDir = fs.mkdtempSync(path.join(os.tmpdir(), 'styleclip-opt-botpacks-'));
    fs.cpSync(tinyPackDir(), path.join(botPacksDir, 'extra'), { recursive: true });
  });
  afterEach(() => deployments.cleanup());
  afterAll(() => {
    fs.rmSync(packsDir, { recursive: true, force: true });
    fs.rmSync(botPacksDir, { recursive: true, force: true });
  });

  const deployment = (label: string, workerEnv: Record<string, string> = {}) =>
    deployments.start(label, { botEnv: { STYLECLIP_PACKS_DIR: botPacksDir }, workerEnv: { STYLECLIP_PACKS_DIR: packsDir, ...workerEnv } });

  it('shows progress with previews, delivers an image; ➕ re-runs it with a weaker pull; bad input is one line each', async () => {
    const d = await deployment('opt-e2e');
    await waitOptimizer(d.worker);

    // Steps out of range: refused at once, nothing queued.
    expect((await d.post('/styleclip purple hair method:optimize steps:301')).text).toBe('steps must be a whole number from 1 to 300 on this server, got 301.');
    expect((await d.post('/styleclip purple hair method:optimize steps:0')).text).toMatch(/^Option steps must be at least 1/);

    const queued = await d.post('/styleclip purple hair method:optimize steps:60 seed:3');
    expect(queued.status === 'queued' || queued.status === 'running').toBe(true);
    // While it runs: a progress bar and a small preview image (a PNG the worker stores as the run goes).
    const preview = await waitFor('a preview image', async () => {
      const m = (await d.messages()).find((x) => x.id === queued.id);
      if (!m?.previewUrl || m.status !== 'running') return undefined;
      expect(m.previewUrl).toMatch(new RegExp(`^/api/previews/${m.jobId}\\?p=\\d+$`));
      const res = await fetch(d.bot.url + m.previewUrl);
      return res.status === 200 ? { type: res.headers.get('content-type'), bytes: Buffer.from(await res.arrayBuffer()), progress: m.progress } : undefined;
    });
    expect(preview.type).toBe('image/png');
    expect(preview.bytes.subarray(1, 4).toString()).toBe('PNG');
    expect(preview.progress).toBeGreaterThan(5);
    const done = await d.reply(queued.id, d.isFinal, 'the result');
    expect(done.status, done.text).toBe('completed');
    expect(done.text).toMatch(/^\*\*purple hair\*\* · optimize · 60 steps · l2 0\.008 · CLIP loss [\d.]+ · seed 3 · [\d.]+ steps\/s on cpu/);
    const image = await fetch(d.bot.url + done.imageUrl!);
    expect(image.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await image.arrayBuffer()).subarray(1, 4).toString()).toBe('PNG');
    expect(done.previewUrl).toBeUndefined();
    expect((await fetch(d.bot.url + `/api/previews/${done.jobId}`)).status).toBe(404); // cleared with the result
    expect(d.worker.output()).not.toMatch(/optimize job failed/);

    // ➕: the same run from the same start, L2 0.008 / 1.5.
    const react = await api(d.bot.url, `/api/messages/${done.id}/reactions`, { user: 'alice', emoji: '➕' });
    const stronger = await d.reply(react.json.id, d.isFinal, 'the ➕ result');
    expect(stronger.status, stronger.text).toBe('completed');
    expect(stronger.text).toMatch(/optimize · 60 steps · l2 0\.005333 · .* seed 3/);

    // Unknown pack (the bot has "extra", this worker does not): one line, and the next job still runs.
    expect((await d.post('/styleclip-admin set pack extra', 'admin')).status).toBe('info');
    const lost = await d.post('/styleclip purple hair method:optimize steps:5', 'bob');
    const failed = await d.reply(lost.id, d.isFinal, 'the unknown-pack failure');
    expect(failed.status).toBe('failed');
    expect(failed.text).toBe('Edit failed: Model pack "extra" is not installed on this worker.');
    await d.post('/styleclip-admin set pack default', 'admin');
    const after = await d.post('/styleclip purple hair method:optimize steps:5', 'bob');
    expect((await d.reply(after.id, d.isFinal)).status).toBe('completed');

    // Exactly one reply per job (claimed once in Redis), counted by the bot.
    const metrics = await (await fetch(`${d.bot.url}/metrics`)).text();
    expect(metrics).toMatch(/styleclip_jobs_total\{status="completed"\} 3/);
    expect(metrics).toMatch(/styleclip_jobs_total\{status="failed"\} 1/);
  }, 300_000);

  it('a worker SIGKILLed mid-run: the next worker reruns the job and the user gets one reply; ❌ stops a run mid-way', async () => {
    const d = await deployment('opt-kill');
    await waitOptimizer(d.worker);
    const queued = await d.post('/styleclip purple hair method:optimize steps:150 seed:5');
    await d.reply(queued.id, (m) => m.status === 'running' && !!m.previewUrl, 'a preview');
    expect(childrenOf(d.worker.pid!)).toHaveLength(1);
    d.worker.kill('SIGKILL');
    await waitExit(d.worker);

    const second = await d.startWorker();
    await waitOptimizer(second);
    const done = await d.reply(queued.id, d.isFinal, 'the rerun');
    expect(done.status, done.text).toBe('completed');
    expect(done.text).toMatch(/150 steps .* seed 5/);
    await new Promise((r) => setTimeout(r, 500)); // a duplicate reply would arrive now
    const metrics = await (await fetch(`${d.bot.url}/metrics`)).text();
    expect(metrics).toMatch(/styleclip_jobs_total\{status="completed"\} 1\n/);

    // ❌ while it runs: cancelled, and the PyTorch process is gone by the time the reply says so.
    const long = await d.post('/styleclip purple hair method:optimize steps:300 seed:6');
    await d.reply(long.id, (m) => m.status === 'running' && !!m.previewUrl, 'a preview');
    const cancel = await api(d.bot.url, `/api/messages/${long.id}/reactions`, { user: 'alice', emoji: '❌' });
    expect(cancel.json.ok).toBe(true);
    const cancelled = await d.reply(long.id, d.isFinal, 'the cancel');
    expect(cancelled.status).toBe('cancelled');
    expect(childrenOf(second.pid!)).toEqual([]);
    expect(second.output()).toMatch(/"code":"cancelled"/);

    // SIGTERM mid-run: the worker stops its PyTorch process, hands the job back to the queue (no try used)
    // and exits 0; the next worker runs it and the user gets one reply.
    const handed = await d.post('/styleclip purple hair method:optimize steps:60 seed:7');
    await d.reply(handed.id, (m) => m.status === 'running' && !!m.previewUrl, 'a preview');
    second.kill('SIGTERM');
    expect(await waitExit(second)).toBe(0);
    expect(second.output()).toMatch(/"msg":"worker stopped"/);
    const third = await d.startWorker();
    await waitOptimizer(third);
    const rerun = await d.reply(handed.id, d.isFinal, 'the handed-back job');
    expect(rerun.status, rerun.text).toBe('completed');
    const after = await (await fetch(`${d.bot.url}/metrics`)).text();
    expect(after).toMatch(/styleclip_jobs_total\{status="completed"\} 2\n/);
    expect(after).toMatch(/styleclip_jobs_total\{status="cancelled"\} 1\n/);
  }, 400_000);

  it('a worker without PyTorch: it says why at start, the command says so at once, and edits still run', async () => {
    const d = await deployment('opt-notorch', { STYLECLIP_PYTHON: '/bin/false' });
    await waitFor('the no-PyTorch note', async () => (/method:optimize and mapper training are off on this worker: no PyTorch/.test(d.worker.output()) ? true : undefined));
    const refused = await d.post('/styleclip purple hair method:optimize');
    expect(refused.status).toBe('error');
    expect(refused.text).toMatch(/^No worker that can run method:optimize is running now \(latent optimization needs PyTorch on a worker\)\./);
    const edit = await d.post('/styleclip purple hair strength:2 seed:1');
    expect((await d.reply(edit.id, d.isFinal)).status).toBe('completed');
  }, 120_000);
});

describe('embedded (styleclip start without Redis)', () => {
  it('runs optimize jobs in process, and follow-ups start from their W+: optimize again, or another method', async () => {
    const bot = await makeTestBot({ packDir: tinyPackDir(), optimize: 'auto' });
    const updates = collectUpdates(bot);
    const run = async (text: string) => {
      const ctx = ctxFor('dave');
      const reply = await bot.invoke('styleclip', { kind: 'text', text }, ctx, targetFor(ctx));
      expect(reply.job, reply.text).toBeDefined();
      return updates.final(reply.job!.id, 120_000);
    };
    try {
      await waitFor('the optimize capability', async () => ((await capableWorker(bot.store, 'optimize')) ? true : undefined));
      const first = await run('purple hair method:optimize steps:5 seed:2');
      expect(first.status, first.text).toBe('completed');
      const again = await run(`purple hair method:optimize steps:5 source:${first.jobId}`);
      expect(again.status, again.text).toBe('completed');
      expect(again.text).toMatch(/optimize · 5 steps · .* seed 2 /);
      const edited = await run(`smile strength:2 source:${again.jobId}`);
      expect(edited.status, edited.text).toBe('completed');
      // A global result lives in StyleSpace: optimizing from it is refused at once.
      const ctx = ctxFor('dave');
      const refused = await bot.invoke('styleclip', { kind: 'text', text: `x method:optimize source:${edited.jobId}` }, ctx, targetFor(ctx));
      expect(refused.text).toMatch(/^method:optimize works on W\+ latents; .* is a global \(StyleSpace\) edit\./);
    } finally {
      await bot.close();
    }
  }, 240_000);

  it('stops a run past the time budget with one line', async () => {
    const bot = await makeTestBot({ packDir: tinyPackDir(), optimize: 'auto', optimizeBudgetS: 1 });
    const updates = collectUpdates(bot);
    try {
      await waitFor('the optimize capability', async () => ((await capableWorker(bot.store, 'optimize')) ? true : undefined));
      const ctx = ctxFor('carol');
      const reply = await bot.invoke('styleclip', { kind: 'text', text: 'purple hair method:optimize steps:300 seed:2' }, ctx, targetFor(ctx));
      expect(reply.job, reply.text).toBeDefined();
      const final = await updates.final(reply.job!.id, 120_000);
      expect(final.status).toBe('failed');
      expect(final.text).toMatch(/^Edit failed: The optimization ran past this worker's 1 s budget \(stopped at step \d+ of 300\); try fewer steps\.$/);
    } finally {
      await bot.close();
    }
    expect(await capableWorker(bot.store, 'optimize')).toBeNull();
  }, 180_000);
});

describe('buttons on an optimize result (embedded)', () => {
  let bot: Awaited<ReturnType<typeof makeTestBot>>;
  let updates: ReturnType<typeof collectUpdates>;
  let first: Awaited<ReturnType<ReturnType<typeof collectUpdates>['final']>>;
  const ctx = ctxFor('erin');
  const here = targetFor(ctx);
  let key = 0;
  const press = (action: 'stronger' | 'weaker' | 'reroll' | 'original') => bot.nudge(first.jobId, action, 'erin', `opt-${++key}`, here, 'button');

  beforeAll(async () => {
    bot = await makeTestBot({ packDir: tinyPackDir(), optimize: 'auto' });
    updates = collectUpdates(bot);
    await waitFor('the optimize capability', async () => ((await capableWorker(bot.store, 'optimize')) ? true : undefined));
    const reply = await bot.invoke('styleclip', { kind: 'text', text: 'purple hair method:optimize steps:3 seed:2' }, ctx, here);
    expect(reply.job, reply.text).toBeDefined();
    first = await updates.final(reply.job!.id, 120_000);
  }, 180_000);
  afterAll(async () => {
    await bot?.close();
  });

  it('offers ➕ ➖ 🎲 ❌ and no ↩', () => {
    expect(first.status, first.text).toBe('completed');
    expect(first.actions).toEqual(['stronger', 'weaker', 'reroll', 'cancel']);
  });

  it('refuses ↩ with one line and queues nothing', async () => {
    const reply = await press('original');
    expect(reply?.error).toBe(true);
    expect(reply?.job).toBeUndefined();
    expect(reply?.text).toMatch(/^↩ does not apply to method:optimize results/);
  });

  it('🎲 queues the same optimization (steps, L2 pull) on a new face', async () => {
    const reply = await press('reroll');
    expect(reply?.job, reply?.text).toBeDefined();
    const data = await getJSON<EditJobData>(bot.store, keys.job(reply!.job!.id));
    expect(data?.spec).toEqual({ method: 'optimize', prompt: 'purple hair', steps: 3, l2Lambda: 0.008, idLambda: 0 });
    expect(data?.source.kind).toBe('seed');
    expect(data?.source).not.toEqual({ kind: 'seed', seed: 2 });
    expect((await updates.final(reply!.job!.id, 120_000)).status).toBe('completed');
  }, 180_000);
});

describe('an ArcFace checkpoint with a malicious pickle', () => {
  it('is refused with one line and leaves the pack as it was (the runtime never unpickles)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'styleclip-evil-'));
    try {
      const target = path.join(dir, 'pack');
      fs.cpSync(tinyPackDir(), target, { recursive: true });
      const before = fs.readFileSync(path.join(target, 'pack.json'), 'utf8');
      const evil = path.join(dir, 'evil.pth');
      const marker = path.join(dir, 'pwned');
      execFileSync('bash', [
        'scripts/toolkit.sh',
        '-c',
        `import os, torch\nclass Evil:\n    def __reduce__(self):\n        return (os.system, ("touch ${marker}",))\ntorch.save({"input_layer.0.weight": Evil()}, "${evil}")`,
      ], { cwd: ROOT });
      const run = spawnSync('bash', ['scripts/toolkit.sh', '-m', 'styleclip_toolkit', 'convert-identity', '--format', 'irse50', '--checkpoint', evil, '--out', target], {
        cwd: ROOT,
        encoding: 'utf8',
      });
      expect(run.status).toBe(1);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      expect(run.stderr).toMatch(/os\.system|not allowed|refus/i);
      expect(fs.existsSync(marker)).toBe(false);
      expect(fs.readFileSync(path.join(target, 'pack.json'), 'utf8')).toBe(before);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('Discord shows optimize previews', () => {
  it("progress edits of an optimize job carry its latest preview image; the result replaces it", async () => {
    const discord = await new FakeDiscord().start();
    class PreviewCore extends StubCore {
      async previewImage(jobId: string): Promise<ResultImage | null> {
        return { bytes: Buffer.from(`preview:${jobId}`), mime: 'image/png', filename: `${jobId}-preview.png` };
      }
    }
    const core = new PreviewCore();
    const adapter = await startDiscordAdapter(core, { DISCORD_TOKEN: discord.botToken, DISCORD_API_BASE: discord.apiBase }, {
      throttleMs: 100,
      reactionDebounceMs: 100,
      logger: pino({ level: 'silent' }),
    });
    try {
      const user = { id: '100000000000000001', username: 'alice' };
      const interactionId = discord.runSlashCommand({ user, channelId: discord.textChannelId, name: 'styleclip', options: { prompt: 'purple hair', method: 'optimize' } });
      const message = await discord.waitFor(() => discord.original(interactionId)?.content.startsWith('Queued') && discord.original(interactionId), 5000, 'queued reply');
      const jobId = `discord:${interactionId}`;
      core.emit(jobId, { status: 'running', progress: 5, text: 'Running **purple hair** · optimize… 5%' });
      await discord.waitFor(() => message.content.endsWith('5%'), 5000, 'start progress');
      expect(message.attachments).toEqual([]);
      core.emit(jobId, { status: 'running', progress: 40, preview: true, text: 'Running **purple hair** · optimize… 40%' });
      await discord.waitFor(() => message.content.endsWith('40%'), 5000, 'preview progress');
      expect(message.attachments.map((a) => [a.filename, a.data.toString()])).toEqual([[`${jobId}-preview.png`, `preview:${jobId}`]]);
      core.complete(jobId);
      await discord.waitFor(() => message.content.startsWith('curly hair · global'), 5000, 'result');
      expect(message.attachments.map((a) => [a.filename, a.data.toString()])).toEqual([['styleclip.png', `png:${jobId}`]]);
    } finally {
      await adapter.close();
      await discord.close();
    }
  });
});
