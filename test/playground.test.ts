// The playground: its HTTP API over the core, and the real page in headless Chromium against `styleclip start`.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
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

  /** Posts a chat message as `user`; `replyTo` answers an earlier message. */
  const post = (user: string, text: string, replyTo?: string) => api(server.url, '/api/messages', { user, text, ...(replyTo ? { replyTo } : {}) });
  const react = (messageId: string, user: string) => api(server.url, `/api/messages/${messageId}/reactions`, { user, emoji: '➕' });
  /** The bot's message answering message `id` once it is no longer pending (completed, for a job). */
  const answerTo = (id: string, status?: PlaygroundMessage['status']) =>
    waitFor(async () => (await messages()).find((m) => m.replyTo === id && (status ? m.status === status : m.status !== 'pending')));

  describe('a posted /styleclip', () => {
    let posted: Awaited<ReturnType<typeof api>>;
    let reply: PlaygroundMessage;
    beforeAll(async () => {
      posted = await post('alice', '/styleclip smile strength:2 seed:4');
      reply = await answerTo(posted.json.id, 'completed');
    });

    it('is accepted', () => {
      expect(posted.status).toBe(200);
    });

    it('is answered by the bot with the result’s image', () => {
      expect(reply).toMatchObject({ bot: true, user: 'styleclip', imageUrl: `/api/images/${reply.jobId}` });
    });

    it('is answered with the caption', () => {
      expect(reply.text).toMatch(/strength 2 .* seed 4/);
    });

    it('has its image served as a PNG', async () => {
      const img = await fetch(server.url + reply.imageUrl!);
      expect(img.headers.get('content-type')).toBe('image/png');
    });

    describe('then ➕ on the result', () => {
      let fromOthers: Awaited<ReturnType<typeof api>>;
      let fromRequester: Awaited<ReturnType<typeof api>>;
      let stronger: PlaygroundMessage;
      let answersAfterSecondReaction: PlaygroundMessage[];
      beforeAll(async () => {
        fromOthers = await react(reply.id, 'mallory');
        fromRequester = await react(reply.id, 'alice');
        stronger = await waitFor(async () => (await messages()).find((m) => m.id === fromRequester.json.id && m.status === 'completed'));
        // Reacting again with the same emoji does nothing (one reaction per user, like the platforms).
        await react(reply.id, 'alice');
        answersAfterSecondReaction = (await messages()).filter((m) => m.replyTo === reply.id);
      });

      it('by anyone but the requester is ignored', () => {
        expect(fromOthers.json).toEqual({ ok: true, ignored: true });
      });

      it('by the requester makes a stronger edit, answering the result', () => {
        expect(fromRequester.json.ok).toBe(true);
        expect(stronger.replyTo).toBe(reply.id);
        expect(stronger.text).toMatch(/strength 3 .* seed 4/);
      });

      it('a second time from the same user does nothing', () => {
        expect(answersAfterSecondReaction).toHaveLength(1);
      });
    });

    it('is edited further by a reply to its result, keeping the seed', async () => {
      const follow = await post('alice', '/styleclip glasses', reply.id);
      expect((await answerTo(follow.json.id, 'completed')).text).toMatch(/glasses.* seed 4 /);
    });
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
    const result = await answerTo((await post('bob', '/styleclip curly hair method:global seed:2')).json.id, 'completed');
    await answerTo((await post('admin', '/styleclip-admin block curly')).json.id, 'info');
    try {
      const reaction = await react(result.id, 'bob');
      const refused = (await messages()).find((m) => m.id === reaction.json.id)!;
      expect(refused).toMatchObject({ status: 'error', text: 'Your prompt contains a word that is blocked on this server.' });
      expect(refused.jobId).toBeUndefined();
      expect(await bot.queue.inFlight()).toEqual([]);
    } finally {
      await post('admin', '/styleclip-admin unblock curly');
    }
  });

  it('shows a refused command as an error', async () => {
    const posted = await post('bob', '/styleclip-admin set strength-max 3');
    expect(await answerTo(posted.json.id)).toMatchObject({ status: 'error', text: 'Only server admins can change StyleCLIP settings.' });
  });

  it('shows an admin command’s answer as info', async () => {
    const posted = await post('admin', '/styleclip-admin set strength-max 3');
    expect(await answerTo(posted.json.id)).toMatchObject({ status: 'info', text: expect.stringMatching(/^Set strength-max\./) });
  });

  it('leaves plain chat unanswered', async () => {
    const chat = await post('bob', 'hello');
    expect((await messages()).some((m) => m.replyTo === chat.json.id)).toBe(false);
  });

  it('rejects a message without a user', async () => {
    expect((await post('', '/styleclip x')).status).toBe(400);
  });

  it('rejects a user name that is not one word', async () => {
    expect((await post('bob bob', 'x')).json.error).toMatch(/^user must be/);
  });

  it('answers 404 to a reaction on an unknown message', async () => {
    expect((await react('nope', 'bob')).status).toBe(404);
  });

  it('rejects a body that is not JSON', async () => {
    const bad = await fetch(server.url + '/api/messages', { method: 'POST', body: '{not json' });
    expect(bad.status).toBe(400);
  });

  it('shows the deployment’s notice', async () => {
    expect((await api(server.url, '/api/messages')).json.notice).toBe('demo pack');
  });

  it('serves /healthz', async () => {
    expect((await api(server.url, '/healthz')).json).toEqual({ ok: true });
  });

  it('serves /metrics', async () => {
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
  let page: Page; // one page for the tests below, as alice
  beforeAll(async () => {
    app = await spawnStyleclip('start', { STYLECLIP_PACK: tinyPackDir(), REDIS_URL: '', DISCORD_TOKEN: '', SLACK_BOT_TOKEN: '' });
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    });
    page = await browser.newPage();
    await page.goto(app.url);
    await page.fill('#user', 'alice');
  });
  afterAll(async () => {
    await browser?.close();
    if (app) {
      app.kill('SIGTERM');
      expect(await waitExit(app)).toBe(0); // graceful shutdown
    }
  });

  /** Types a command into the page and sends it. */
  async function send(text: string) {
    await page.fill('input[name=text]', text);
    await page.press('input[name=text]', 'Enter');
  }

  it('warns in its log that the pack has untrained weights, pointing to the docs', () => {
    expect(app.output()).toMatch(/untrained random weights.*docs\/operations\.md/);
  });

  it('reports its queue, pack and untrained weights in /healthz', async () => {
    const health = await (await fetch(app.url + '/healthz')).json();
    expect(health).toMatchObject({ ok: true, queue: 'memory', pack: 'tiny', untrained: true });
  });

  it('shows that the pack is untrained on the page', async () => {
    await expect(page.locator('#notice').textContent()).resolves.toMatch(/untrained/);
  });

  it('type a command, see the image, react ➕, see the stronger image', async () => {
    await send('/styleclip smiling face strength:2 seed:5');
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
  });

  it('shows a refused admin command as an error message', async () => {
    await send('/styleclip-admin set strength-max 3');
    await expect(page.locator('.msg.error .text').last().textContent({ timeout: 10_000 })).resolves.toBe(
      'Only server admins can change StyleCLIP settings.',
    );
  });
});
