// The playground: its HTTP API over the core, and the real page in headless Chromium against `styleclip start`.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import type { App } from '../src/runtime/app.ts';
import type { BotCore, CommandReply, InvocationContext, JobUpdate, ReplyTarget } from '../src/core/types.ts';
import { createPlayground, type PlaygroundMessage } from '../src/adapters/playground/index.ts';
import { startOpsServer, type OpsServer } from '../src/runtime/http.ts';
import { makeTestBot, spawnStyleclip, tinyPackDir, waitExit } from './helpers/core-bot.ts';

async function api(base: string, path: string, body?: unknown) {
  const res = await fetch(base + path, body ? { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {});
  return { status: res.status, json: (await res.json()) as any };
}

async function waitFor<T>(fn: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() - start > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('playground API', () => {
  let bot: App;
  let server: OpsServer;
  beforeAll(async () => {
    bot = await makeTestBot();
    const pg = createPlayground(bot, { admins: ['admin'], notice: 'demo pack' });
    server = await startOpsServer({
      host: '127.0.0.1',
      port: 0,
      health: async () => ({ ok: true }),
      metrics: async () => ({ contentType: bot.metrics.contentType, text: await bot.metricsText() }),
      routes: pg.routes,
    });
  });
  afterAll(async () => {
    await server.close();
    await bot.close();
  });

  const messages = async () => (await api(server.url, '/api/messages')).json.messages as PlaygroundMessage[];

  it('posts a command, shows the reply with progress and the image, and ➕ makes a stronger one', async () => {
    const posted = await api(server.url, '/api/messages', { user: 'alice', text: '/styleclip smile strength:2 seed:4' });
    expect(posted.status).toBe(200);
    const reply = await waitFor(async () => (await messages()).find((m) => m.replyTo === posted.json.id && m.status === 'completed'));
    expect(reply).toMatchObject({ bot: true, user: 'styleclip', imageUrl: `/api/images/${reply.jobId}` });
    expect(reply.text).toMatch(/strength 2 .* seed 4/);
    const img = await fetch(server.url + reply.imageUrl!);
    expect(img.headers.get('content-type')).toBe('image/png');

    expect((await api(server.url, `/api/messages/${reply.id}/reactions`, { user: 'mallory', emoji: '➕' })).json).toEqual({ ok: true, ignored: true });
    const react = await api(server.url, `/api/messages/${reply.id}/reactions`, { user: 'alice', emoji: '➕' });
    expect(react.json.ok).toBe(true);
    const stronger = await waitFor(async () => (await messages()).find((m) => m.id === react.json.id && m.status === 'completed'));
    expect(stronger.replyTo).toBe(reply.id);
    expect(stronger.text).toMatch(/strength 3 .* seed 4/);
    // Reacting again with the same emoji does nothing (one reaction per user, like the platforms).
    await api(server.url, `/api/messages/${reply.id}/reactions`, { user: 'alice', emoji: '➕' });
    expect((await messages()).filter((m) => m.replyTo === reply.id)).toHaveLength(1);

    // Replying to a result edits it further.
    const follow = await api(server.url, '/api/messages', { user: 'alice', text: '/styleclip glasses', replyTo: reply.id });
    const followed = await waitFor(async () => (await messages()).find((m) => m.replyTo === follow.json.id && m.status === 'completed'));
    expect(followed.text).toMatch(/glasses.* seed 4 /);
  });

  it('a result offers the buttons the platforms show; 🎲 is the same edit on a new face, ↩ the original face', async () => {
    const posted = await api(server.url, '/api/messages', { user: 'carol', text: '/styleclip smile strength:2 seed:6' });
    const reply = await waitFor(async () => (await messages()).find((m) => m.replyTo === posted.json.id && m.status === 'completed'));
    expect(reply.buttons?.map((b) => `${b.emoji} ${b.label}`)).toEqual(['➕ stronger', '➖ weaker', '🎲 new face', '↩ original', '❌ delete']);
    const finished = async (emoji: string) => {
      const react = await api(server.url, `/api/messages/${reply.id}/reactions`, { user: 'carol', emoji });
      return waitFor(async () => (await messages()).find((m) => m.id === react.json.id && m.status === 'completed'));
    };
    const rerolled = await finished('🎲');
    expect(rerolled.text).toMatch(/smile.* strength 2 .* seed \d+/);
    expect(rerolled.text).not.toMatch(/seed 6 /);
    const original = await finished('↩');
    expect(original.text).toMatch(/smile.* strength 0 .* seed 6 /);
    expect(original.buttons?.map((b) => b.emoji)).toEqual(['🎲', '❌']);
  });

  it('refuses a ➕ on an old result once an admin has blocked a word of its prompt, and says why', async () => {
    const posted = await api(server.url, '/api/messages', { user: 'bob', text: '/styleclip curly hair method:global seed:2' });
    const result = await waitFor(async () => (await messages()).find((m) => m.replyTo === posted.json.id && m.status === 'completed'));
    const block = await api(server.url, '/api/messages', { user: 'admin', text: '/styleclip-admin block curly' });
    await waitFor(async () => (await messages()).find((m) => m.replyTo === block.json.id && m.status === 'info'));
    try {
      const react = await api(server.url, `/api/messages/${result.id}/reactions`, { user: 'bob', emoji: '➕' });
      const refused = (await messages()).find((m) => m.id === react.json.id)!;
      expect(refused).toMatchObject({ status: 'error', text: 'Your prompt contains a word that is blocked on this server.' });
      expect(refused.jobId).toBeUndefined();
      expect(await bot.queue.inFlight()).toEqual([]);
    } finally {
      await api(server.url, '/api/messages', { user: 'admin', text: '/styleclip-admin unblock curly' });
    }
  });

  it('shows refusals as errors and plain chat as chat; rejects malformed requests', async () => {
    const posted = await api(server.url, '/api/messages', { user: 'bob', text: '/styleclip-admin set strength-max 3' });
    const reply = await waitFor(async () => (await messages()).find((m) => m.replyTo === posted.json.id && m.status !== 'pending'));
    expect(reply).toMatchObject({ status: 'error', text: 'Only server admins can change StyleCLIP settings.' });
    const asAdmin = await api(server.url, '/api/messages', { user: 'admin', text: '/styleclip-admin set strength-max 3' });
    const ok = await waitFor(async () => (await messages()).find((m) => m.replyTo === asAdmin.json.id && m.status !== 'pending'));
    expect(ok).toMatchObject({ status: 'info', text: expect.stringMatching(/^Set strength-max\./) });
    const chat = await api(server.url, '/api/messages', { user: 'bob', text: 'hello' });
    expect((await messages()).some((m) => m.replyTo === chat.json.id)).toBe(false);
    expect((await api(server.url, '/api/messages', { user: '', text: '/styleclip x' })).status).toBe(400);
    expect((await api(server.url, '/api/messages', { user: 'bob bob', text: 'x' })).json.error).toMatch(/^user must be/);
    expect((await api(server.url, '/api/messages/nope/reactions', { user: 'bob', emoji: '➕' })).status).toBe(404);
    const bad = await fetch(server.url + '/api/messages', { method: 'POST', body: '{not json' });
    expect(bad.status).toBe(400);
    expect((await api(server.url, '/api/messages')).json.notice).toBe('demo pack');
  });

  it('serves /healthz and /metrics', async () => {
    expect((await api(server.url, '/healthz')).json).toEqual({ ok: true });
    const metrics = await (await fetch(server.url + '/metrics')).text();
    expect(metrics).toContain('styleclip_queue_depth');
    expect(metrics).toContain('styleclip_batch_size_bucket');
  });
});

describe('playground replies', () => {
  it("a job update that arrives before the command's reply is not overwritten by \"Queued\"", async () => {
    let listener: ((u: JobUpdate) => void | Promise<void>) | undefined;
    const core = {
      onUpdate: (_platform: string, l: (u: JobUpdate) => void | Promise<void>) => ((listener = l), () => {}),
      // The job starts (and reports) before invoke() returns, as it can when the worker is idle.
      async invoke(_name: string, _input: unknown, ctx: InvocationContext, target: ReplyTarget): Promise<CommandReply> {
        await listener!({ jobId: 'j1', status: 'running', progress: 10, text: 'Running smile… 10%', target, requesterId: ctx.user.id });
        return { text: 'Queued smile — position 1.', job: { id: 'j1', position: 1 } };
      },
      linkMessage: async () => {},
    } as unknown as BotCore;
    const pg = createPlayground(core, { admins: [] });
    const server = await startOpsServer({ host: '127.0.0.1', port: 0, health: async () => ({ ok: true }), metrics: async () => ({ contentType: 'text/plain', text: '' }), routes: pg.routes });
    try {
      const posted = await api(server.url, '/api/messages', { user: 'alice', text: '/styleclip smile' });
      const reply = pg.messages().find((m) => m.replyTo === posted.json.id);
      expect(reply).toMatchObject({ status: 'running', progress: 10, text: 'Running smile… 10%', jobId: 'j1' });
    } finally {
      await server.close();
      pg.close();
    }
  });
});

describe('`styleclip start` on a port in use', () => {
  it('exits with the error instead of hanging on its open engine thread', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = String((taken.address() as net.AddressInfo).port);
    try {
      const env = { STYLECLIP_PACK: tinyPackDir(), REDIS_URL: '', DISCORD_TOKEN: '', SLACK_BOT_TOKEN: '', PORT: port };
      await expect(spawnStyleclip('start', env)).rejects.toThrow(/exited with 1:[\s\S]*EADDRINUSE/);
    } finally {
      taken.close();
    }
  });
});

describe('playground in a real browser, from `styleclip start`', () => {
  let app: Awaited<ReturnType<typeof spawnStyleclip>>;
  let browser: Browser;
  beforeAll(async () => {
    app = await spawnStyleclip('start', { STYLECLIP_PACK: tinyPackDir(), REDIS_URL: '', DISCORD_TOKEN: '', SLACK_BOT_TOKEN: '' });
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    if (app) {
      app.kill('SIGTERM');
      expect(await waitExit(app)).toBe(0); // graceful shutdown
    }
  });

  it('type a command, see the image, react ➕, see the stronger image', async () => {
    expect(app.output()).toMatch(/untrained random weights.*docs\/operations\.md/);
    const page = await browser.newPage();
    await page.goto(app.url);
    await expect(page.locator('#notice').textContent()).resolves.toMatch(/untrained/);
    await page.fill('#user', 'alice');
    await page.fill('input[name=text]', '/styleclip smiling face strength:2 seed:5');
    await page.press('input[name=text]', 'Enter');
    const first = page.locator('img.result').first();
    await first.waitFor({ timeout: 30_000 });
    await page.waitForFunction(() => {
      const img = document.querySelector('img.result') as HTMLImageElement | null;
      return !!img && img.complete && img.naturalWidth === 64;
    });
    await expect(page.locator('.msg.bot[data-status=completed] .text').first().textContent()).resolves.toMatch(/strength 2 .*seed 5/);

    await page.locator('.msg.bot[data-status=completed] button.react[data-emoji="➕"]').first().click();
    await page.locator('img.result').nth(1).waitFor({ timeout: 30_000 });
    await page.waitForFunction(() => [...document.querySelectorAll('img.result')].every((i) => (i as HTMLImageElement).naturalWidth === 64));
    await expect(page.locator('.msg.bot[data-status=completed] .text').nth(1).textContent()).resolves.toMatch(/strength 3 .*seed 5/);

    // An admin error shows as an error message.
    await page.fill('input[name=text]', '/styleclip-admin set strength-max 3');
    await page.press('input[name=text]', 'Enter');
    await expect(page.locator('.msg.error .text').last().textContent({ timeout: 10_000 })).resolves.toBe(
      'Only server admins can change StyleCLIP settings.',
    );
    const health = await (await fetch(app.url + '/healthz')).json();
    expect(health).toMatchObject({ ok: true, queue: 'memory', pack: 'tiny', untrained: true });
  });
});
