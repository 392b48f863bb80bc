// Acceptance: the real discord.js client, the real bot core and the tiny pack's real ONNX engine,
// against the protocol-level fake Discord (REST + gateway).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { createApp, type App } from '../src/runtime/app.ts';
import type { AdapterHandle, BotCore, CommandReply } from '../src/core/types.ts';
import { silentLogger } from '../src/log.ts';
import { startDiscordAdapter } from '../src/adapters/discord/index.ts';
import { FakeDiscord, Permission, type FakeMessage, type FakeUser } from './fakes/discord/fake-discord.ts';
import { SlowProxy } from './fakes/discord/slow-proxy.ts';
import { dropPrefix, testAppOptions, tinyPackDir, uniquePrefix } from './helpers/core-bot.ts';

const alice: FakeUser = { id: '200000000000000001', username: 'alice' };
const bob: FakeUser = { id: '200000000000000002', username: 'bob' };
const admin: FakeUser = { id: '200000000000000003', username: 'admin' };
const adapterOptions = { throttleMs: 300, reactionDebounceMs: 300, logger: silentLogger };

/** The core as the adapter sees it, with its nudges recorded. */
function recordNudges(bot: App) {
  const nudges: { userId: string; reply: CommandReply | null }[] = [];
  // The real core, with nudge() wrapped.
  const core: BotCore = Object.assign(Object.create(bot) as App, {
    nudge: async (...args: Parameters<BotCore['nudge']>) => {
      const reply = await bot.nudge(...args);
      nudges.push({ userId: args[2], reply });
      return reply;
    },
  });
  return { core, nudges };
}

function strengthOf(m: FakeMessage): number {
  return Number(/strength (-?[\d.]+)/.exec(m.content)?.[1]);
}

/** Runs a slash command; resolves with the interaction id. */
function command(discord: FakeDiscord, user: FakeUser, name: string, options: Record<string, string | number>, extra: { subcommand?: string; permissions?: bigint } = {}) {
  return discord.runSlashCommand({ user, channelId: discord.textChannelId, name, options, ...extra });
}

async function ephemeralError(discord: FakeDiscord, id: string): Promise<string> {
  const msg = await discord.waitFor(() => [discord.original(id), ...discord.followups(id)].find((m) => m && !m.deleted && m.embeds.length), 15_000, 'error embed');
  expect(msg!.flags & 64).toBe(64);
  expect(msg!.embeds[0].color).toBe(0xed4245);
  return String(msg!.embeds[0].description);
}

describe('Discord end to end (in-process queue)', () => {
  let discord: FakeDiscord;
  let bot: App;
  let adapter: AdapterHandle;
  let nudges: ReturnType<typeof recordNudges>['nudges'];

  beforeAll(async () => {
    discord = await new FakeDiscord().start();
    bot = await createApp(testAppOptions({ packDir: tinyPackDir(), logger: silentLogger, batchWindowMs: 2 }));
    const recorded = recordNudges(bot);
    nudges = recorded.nudges;
    adapter = await startDiscordAdapter(recorded.core, { DISCORD_TOKEN: discord.botToken, DISCORD_API_BASE: discord.apiBase }, adapterOptions);
  });

  afterAll(async () => {
    await adapter?.close();
    await bot?.close();
    await discord?.close();
  });

  describe('/styleclip curly hair seed:3 from alice', () => {
    let id: string;
    let message: FakeMessage;
    let first: FakeMessage['attachments'][number];
    beforeAll(async () => {
      id = command(discord, alice, 'styleclip', { prompt: 'curly hair', seed: 3 });
      message = await discord.waitFor(() => discord.original(id)?.attachments.length && discord.original(id), 30_000, 'result');
      first = message.attachments[0];
      await discord.waitFor(() => message.reactions.get('❌')?.includes(discord.bot.id), 5000, 'seed reactions');
    });

    it('is deferred at once', () => {
      expect(discord.interaction(id).callbacks.map((c) => [c.type, c.status])).toEqual([[5, 200]]);
    });

    it('is answered in the deferred reply, captioned with the prompt and seed', () => {
      expect(message.content).toContain('curly hair');
      expect(message.content).toContain('seed 3');
    });

    it('attaches the image as a PNG at the pack’s resolution', async () => {
      const meta = await sharp(first.data).metadata();
      expect(meta.format).toBe('png');
      expect(meta.width).toBe(bot.packs.defaultPack.resolution);
    });

    it('offers ➕, ➖ and ❌ as reactions', () => {
      expect([...message.reactions.keys()]).toEqual(['➕', '➖', '❌']);
    });

    describe('then ➕ from bob, and twice in a row from alice', () => {
      let before: number;
      beforeAll(async () => {
        before = strengthOf(message);
        discord.react(message.id, bob, '➕');
        await discord.waitFor(() => nudges.some((n) => n.userId === bob.id), 10_000, "bob's nudge");
        discord.react(message.id, alice, '➕');
        discord.react(message.id, alice, '➕'); // a rapid repeat
        await discord.waitFor(() => strengthOf(message) > before && message.attachments[0]?.id !== first.id && message.attachments.length === 1, 30_000, 'stronger result');
      });

      it('does nothing for bob, who did not ask', () => {
        expect(nudges.find((n) => n.userId === bob.id)?.reply).toBeNull();
      });

      it('re-runs stronger for alice, replacing the image in the same message', () => {
        expect(strengthOf(message)).toBeGreaterThan(before);
        expect(message.attachments).toHaveLength(1);
        expect(message.attachments[0].data.equals(first.data)).toBe(false);
        expect(message.deleted).toBe(false);
      });

      it('makes one job of a rapid repeat', () => {
        expect(nudges.filter((n) => n.userId === alice.id && n.reply?.job)).toHaveLength(1);
      });
    });
  });

  it("falls back to a smaller format when the PNG exceeds the channel's upload limit", async () => {
    const id = discord.runSlashCommand({ user: admin, channelId: discord.threadId, name: 'styleclip', options: { prompt: 'curly hair', seed: 4 }, attachmentSizeLimit: 2000 });
    const message = await discord.waitFor(() => discord.original(id)?.attachments.length && discord.original(id), 30_000, 'result');
    const [file] = message.attachments;
    expect(file.size).toBeLessThanOrEqual(2000);
    expect(['webp', 'jpeg']).toContain((await sharp(file.data).metadata()).format);
    expect(message.channelId).toBe(discord.threadId);
  });

  it('shows private replies (help) only to the invoker', async () => {
    const id = command(discord, bob, 'styleclip-help', {});
    const reply = await discord.waitFor(() => [discord.original(id), ...discord.followups(id)].find((m) => m && !m.deleted && m.content.includes('/styleclip')), 10_000, 'help');
    expect(reply!.flags & 64).toBe(64);
    expect(reply!.embeds).toEqual([]);
  });

  it("refuses a non-admin's settings change, privately", async () => {
    const denied = command(discord, bob, 'styleclip-admin', { key: 'strength-max', value: '8' }, { subcommand: 'set' });
    expect(await ephemeralError(discord, denied)).toMatch(/only server admins/i);
  });

  it("saves an admin's settings change, and says so privately", async () => {
    const allowed = command(discord, admin, 'styleclip-admin', { key: 'strength-max', value: '8' }, { subcommand: 'set', permissions: Permission.ManageGuild });
    const ok = await discord.waitFor(() => discord.original(allowed)?.content.startsWith('Set strength-max') && discord.original(allowed), 10_000, 'saved');
    expect(ok.flags & 64).toBe(64);
    expect(ok.content).toContain('to 8');
  });

  describe('/styleclip when the queue is full (server-running and server-waiting 0)', () => {
    let id: string;
    let error: string;
    beforeAll(async () => {
      for (const key of ['server-running', 'server-waiting']) {
        const set = command(discord, admin, 'styleclip-admin', { key, value: '0' }, { subcommand: 'set', permissions: Permission.ManageGuild });
        await discord.waitFor(() => discord.original(set)?.content.startsWith(`Set ${key}`), 10_000, key);
      }
      id = command(discord, alice, 'styleclip', { prompt: 'curly hair' });
      error = await ephemeralError(discord, id);
    });

    it('says so, privately', () => {
      expect(error).toMatch(/queue is full/i);
    });

    it('answers the interaction once, in time, and deletes the deferred reply', () => {
      expect(discord.interaction(id).callbacks.map((c) => c.status)).toEqual([200]);
      expect(discord.original(id)?.deleted).toBe(true);
    });
  });
});

describe('Discord end to end: an admin trains a mapper (real toolkit, in-process queue)', () => {
  let discord: FakeDiscord;
  let bot: App;
  let adapter: AdapterHandle;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'styleclip-discord-train-'));
    discord = await new FakeDiscord().start();
    bot = await createApp(testAppOptions({ packDir: tinyPackDir(), dataDir, optimize: 'on', logger: silentLogger, batchWindowMs: 2 }));
    adapter = await startDiscordAdapter(bot, { DISCORD_TOKEN: discord.botToken, DISCORD_API_BASE: discord.apiBase }, adapterOptions);
  }, 120_000);

  afterAll(async () => {
    await adapter?.close();
    await bot?.close();
    await discord?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it("posts train-mapper in the channel, not privately (it outlives the 15-min token), with its result there; a refusal stays private", async () => {
    const refused = command(discord, admin, 'styleclip-admin', { prompt: 'curly hair' }, { subcommand: 'train-mapper', permissions: Permission.ManageGuild });
    expect(await ephemeralError(discord, refused)).toBe('Pack "tiny" already has a mapper for "curly hair"; /styleclip curly hair uses it.');

    const id = command(discord, admin, 'styleclip-admin', { prompt: 'pixie cut', steps: 3 }, { subcommand: 'train-mapper', permissions: Permission.ManageGuild });
    const done = await discord.waitFor(() => discord.original(id)?.content.startsWith('Trained mapper') && discord.original(id), 120_000, 'the trained mapper');
    expect(done.flags & 64).toBe(0);
    expect(done.content).toMatch(/^Trained mapper \*\*pixie cut\*\* for this server · 3 steps/);
    expect(done.attachments.map((a) => a.filename)).toEqual([expect.stringMatching(/\.png$/)]);
    const help = command(discord, bob, 'styleclip-help', {});
    const text = await discord.waitFor(() => discord.original(help)?.content.includes('mappers:') && discord.original(help)!.content, 10_000, 'help');
    expect(text).toContain("pixie cut (this server's)");
  }, 180_000);
});

describe('Discord end to end (BullMQ on a slow Redis)', () => {
  const redis = { host: '127.0.0.1', port: 6379 };
  const prefix = uniquePrefix('discord');
  let proxy: SlowProxy;
  let discord: FakeDiscord;
  let bot: App;
  let adapter: AdapterHandle;

  beforeAll(async () => {
    proxy = await new SlowProxy(redis).start();
    discord = await new FakeDiscord().start();
    bot = await createApp(testAppOptions({ packDir: tinyPackDir(), redisUrl: proxy.url, prefix, worker: true, logger: silentLogger, batchWindowMs: 2 }));
    adapter = await startDiscordAdapter(bot, { DISCORD_TOKEN: discord.botToken, DISCORD_API_BASE: discord.apiBase }, adapterOptions);
  });

  afterAll(async () => {
    await adapter?.close();
    await bot?.close();
    await discord?.close();
    await proxy?.close();
    await dropPrefix(`redis://${redis.host}:${redis.port}`, prefix);
  });

  it('defers within 3 s while each Redis round trip takes 0.6 s, then delivers the result', async () => {
    proxy.delayMs = 300;
    const id = command(discord, alice, 'styleclip', { prompt: 'curly hair', seed: 5 });
    await discord.waitFor(() => discord.original(id)?.content.startsWith('Queued'), 30_000, 'queued reply');
    proxy.delayMs = 0;
    expect(discord.interaction(id).callbacks.map((c) => [c.type, c.status])).toEqual([[5, 200]]);
    const message = await discord.waitFor(() => discord.original(id)?.attachments.length && discord.original(id), 30_000, 'result');
    expect(message.content).toContain('seed 5');
  });
});
