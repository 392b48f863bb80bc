// The Discord adapter's edge cases, with the real discord.js client against the fake Discord and a
// scriptable core (test/discord-e2e.test.ts runs the acceptance flow on the real core).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import type { AdapterHandle } from '../src/core/types.ts';
import { startDiscordAdapter } from '../src/adapters/discord/index.ts';
import { FakeDiscord, Permission, type FakeUser } from './fakes/discord/fake-discord.ts';
import { StubCore } from './fakes/discord/stub-core.ts';

const alice: FakeUser = { id: '100000000000000001', username: 'alice' };
const bob: FakeUser = { id: '100000000000000002', username: 'bob' };
const admin: FakeUser = { id: '100000000000000003', username: 'admin' };

let discord: FakeDiscord;
let core: StubCore;
let adapter: AdapterHandle;

beforeAll(async () => {
  discord = await new FakeDiscord().start();
  core = new StubCore();
  adapter = await startDiscordAdapter(core, { DISCORD_TOKEN: discord.botToken, DISCORD_API_BASE: discord.apiBase }, {
    throttleMs: 300,
    reactionDebounceMs: 300,
    logger: pino({ level: 'silent' }),
  });
});

afterAll(async () => {
  await adapter?.close();
  await discord?.close();
});

/** Runs `/styleclip prompt:…` and waits until the deferred reply shows the queued job. */
async function styleclip(user: FakeUser, channelId = discord.textChannelId, extra: Record<string, string | number> = {}) {
  const interactionId = discord.runSlashCommand({ user, channelId, name: 'styleclip', options: { prompt: 'curly hair', ...extra } });
  const message = await discord.waitFor(() => discord.original(interactionId)?.content.startsWith('Queued') && discord.original(interactionId), 5000, 'queued reply');
  const jobId = `discord:${interactionId}`;
  return { interactionId, message, jobId };
}

describe('discord adapter', () => {
  it('identifies with the reaction intents and no privileged intent', () => {
    expect(discord.identifiedIntents & (1 << 10)).toBeTruthy(); // GUILD_MESSAGE_REACTIONS
    expect(discord.identifiedIntents & (1 << 13)).toBeTruthy(); // DIRECT_MESSAGE_REACTIONS
    expect(discord.identifiedIntents & ((1 << 1) | (1 << 8) | (1 << 15))).toBe(0);
  });

  describe('fails to start with a one-line reason', () => {
    it('without a token', async () => {
      await expect(startDiscordAdapter(core, {})).rejects.toThrow(/^DISCORD_TOKEN is not set/);
    });

    it('with an API base that is not an http(s) URL', async () => {
      await expect(startDiscordAdapter(core, { DISCORD_TOKEN: 't', DISCORD_API_BASE: 'localhost:3000/api' })).rejects.toThrow(
        'DISCORD_API_BASE: expected an http(s) URL without the version, got "localhost:3000/api"',
      );
    });

    it('with a wrong token', async () => {
      await expect(startDiscordAdapter(core, { DISCORD_TOKEN: 'wrong', DISCORD_API_BASE: discord.apiBase }, { logger: pino({ level: 'silent' }) })).rejects.toThrow(/^Discord login failed: An invalid token was provided/);
    });
  });

  describe('/styleclip curly hair strength:3.5 seed:7, a burst of progress, then the result', () => {
    let run: Awaited<ReturnType<typeof styleclip>>;
    let call: StubCore['invocations'][number];
    let progressShown: string[];
    beforeAll(async () => {
      run = await styleclip(alice, discord.textChannelId, { strength: 3.5, seed: 7 });
      const { interactionId, message, jobId } = run;
      call = core.invocations.find((c) => c.ctx.requestId === interactionId)!;
      core.emit(jobId, { status: 'queued', position: 3 });
      for (let p = 10; p <= 90; p += 10) core.emit(jobId, { status: 'running', progress: p });
      await discord.waitFor(() => message.content.includes('90%'), 5000, 'progress edit');
      progressShown = message.history.filter((h) => h.content.includes('%') || h.content.includes('Queued (#')).map((h) => h.content);
      core.complete(jobId);
      await discord.waitFor(() => message.reactions.get('❌')?.includes(discord.bot.id), 5000, 'seed reactions');
    });

    it('defers the interaction', () => {
      expect(discord.interaction(run.interactionId).callbacks.map((c) => [c.type, c.status])).toEqual([[5, 200]]);
    });

    it('passes the typed options to the core', () => {
      expect(call.input).toEqual({ kind: 'options', options: { prompt: 'curly hair', strength: 3.5, seed: 7 } });
    });

    it('passes the invocation context to the core', () => {
      expect(call.ctx).toMatchObject({ platform: 'discord', serverId: discord.guildId, channelId: discord.textChannelId, user: { id: alice.id }, isPlatformAdmin: false });
    });

    it('names the deferred reply as the reply target', () => {
      expect(call.target).toEqual({ platform: 'discord', channelId: discord.textChannelId, messageId: run.message.id });
    });

    it('collapses a burst of progress into one throttled edit showing the latest value', () => {
      expect(progressShown).toEqual(['🎨 Editing… 90%']);
    });

    it('shows the result’s caption', () => {
      expect(run.message.content).toBe('curly hair · global · strength 3.5 · seed 1');
    });

    it('attaches the result’s image', () => {
      expect(run.message.attachments.map((a) => [a.filename, a.data.toString()])).toEqual([['styleclip.png', `png:${run.jobId}`]]);
    });

    it('offers ➕, ➖ and ❌ as reactions', () => {
      expect([...run.message.reactions.keys()]).toEqual(['➕', '➖', '❌']);
    });

    it('edits the reply through the interaction webhook', () => {
      expect(run.message.history.at(-1)?.via).toBe('webhook');
    });

    it('asks the core for an image within the interaction’s attachment_size_limit', () => {
      expect(core.imageRequests.find((r) => r.jobId === run.jobId)?.maxBytes).toBe(discord.sizeLimit);
    });
  });

  describe('➕ on a result from bob, then three times from alice', () => {
    let run: Awaited<ReturnType<typeof styleclip>>;
    let linkAfterBob: string | undefined;
    let newJob: string;
    beforeAll(async () => {
      run = await styleclip(alice);
      const { message, jobId } = run;
      core.complete(jobId);
      await discord.waitFor(() => message.attachments.length === 1, 5000, 'first result');
      discord.react(message.id, bob, '➕');
      await discord.waitFor(() => core.nudges.some((n) => n.userId === bob.id && n.jobId === jobId), 5000, 'bob nudge');
      linkAfterBob = core.links.get(message.id);
      for (let k = 0; k < 3; k++) discord.react(message.id, alice, '➕');
      newJob = await discord.waitFor(() => core.links.get(message.id) !== jobId && core.links.get(message.id), 5000, 'nudge job');
      core.complete(newJob);
      await discord.waitFor(() => message.content.includes('strength 5'), 5000, 'stronger result');
    });

    it('changes nothing for bob, whom the core refuses', () => {
      expect(linkAfterBob).toBe(run.jobId);
    });

    it('collapses alice’s rapid repeats into one nudge', () => {
      expect(core.nudges.filter((n) => n.userId === alice.id && n.jobId === run.jobId)).toHaveLength(1);
    });

    it('re-runs stronger for alice, in the same message', () => {
      expect(core.strength(newJob)).toBe(5);
      expect(run.message.attachments.map((a) => a.data.toString())).toEqual([`png:${newJob}`]);
    });
  });

  it('deletes its result on ❌ by the requester only', async () => {
    const { message, jobId } = await styleclip(alice);
    core.complete(jobId);
    await discord.waitFor(() => message.attachments.length === 1, 5000, 'result');
    discord.react(message.id, bob, '❌');
    await discord.waitFor(() => core.nudges.some((n) => n.userId === bob.id && n.jobId === jobId && n.nudge === 'cancel'), 5000, 'bob ❌');
    expect(message.deleted).toBe(false);
    discord.react(message.id, alice, '❌');
    await discord.waitFor(() => message.deleted, 5000, 'deleted');
  });

  it('answers within 3 s even when the core takes 3.5 s (full queue, slow Redis)', async () => {
    core.invokeDelayMs = 3500;
    try {
      const { interactionId } = await styleclip(bob);
      expect(discord.interaction(interactionId).callbacks.map((c) => c.status)).toEqual([200]);
    } finally {
      core.invokeDelayMs = 0;
    }
  });

  it('shows refusals privately as a red embed and removes the public placeholder', async () => {
    const id = discord.runSlashCommand({ user: bob, channelId: discord.textChannelId, name: 'styleclip', options: { prompt: 'banned words' } });
    const [error] = await discord.waitFor(() => discord.followups(id).length && discord.followups(id), 5000, 'followup');
    expect(error.flags & 64).toBe(64);
    expect(error.embeds[0]).toMatchObject({ title: 'Sorry', description: 'That prompt is not allowed here.', color: 0xed4245 });
    expect(discord.original(id)?.deleted).toBe(true);
  });

  it('reports internal errors without details and never leaves "thinking…"', async () => {
    core.invokeError = new Error('redis: connection refused at 10.0.0.3');
    try {
      const id = discord.runSlashCommand({ user: bob, channelId: discord.textChannelId, name: 'styleclip', options: { prompt: 'x' } });
      const [error] = await discord.waitFor(() => discord.followups(id).length && discord.followups(id), 5000, 'followup');
      expect(String(error.embeds[0].description)).not.toContain('redis');
      expect(discord.original(id)?.deleted).toBe(true);
    } finally {
      core.invokeError = undefined;
    }
  });

  it('checks admin rights on the server side, refusing privately', async () => {
    const denied = discord.runSlashCommand({ user: bob, channelId: discord.textChannelId, name: 'styleclip-settings', subcommand: 'set', options: { 'max-strength': 8 } });
    const msg = await discord.waitFor(() => discord.original(denied)?.embeds.length && discord.original(denied), 5000, 'refusal');
    expect(msg.flags & 64).toBe(64);
    expect(msg.embeds[0]).toMatchObject({ description: 'Only server admins (Manage Server) can change settings.' });
  });

  it('passes an admin’s settings to the core as a platform admin, answering privately', async () => {
    const allowed = discord.runSlashCommand({ user: admin, channelId: discord.textChannelId, name: 'styleclip-settings', subcommand: 'set', options: { 'max-strength': 8 }, permissions: Permission.ManageGuild });
    const ok = await discord.waitFor(() => discord.original(allowed)?.content === 'Settings saved.' && discord.original(allowed), 5000, 'saved');
    expect(ok.flags & 64).toBe(64);
    expect(core.invocations.at(-1)?.input).toEqual({ kind: 'options', subcommand: 'set', options: { 'max-strength': 8 } });
    expect(core.invocations.at(-1)?.ctx.isPlatformAdmin).toBe(true);
  });

  it('works in DMs (no guild): commands and reactions', async () => {
    const dm = discord.dmChannel(alice);
    const inDm = await styleclip(alice, dm.id);
    const dmCall = core.invocations.find((c) => c.ctx.requestId === inDm.interactionId)!;
    expect(dmCall.ctx.serverId).toBeNull();
    core.complete(inDm.jobId);
    await discord.waitFor(() => inDm.message.reactions.has('➕'), 5000, 'DM result');
    discord.react(inDm.message.id, alice, '➖');
    await discord.waitFor(() => core.nudges.some((n) => n.jobId === inDm.jobId && n.nudge === 'weaker'), 5000, 'DM reaction');
  });

  it('works in threads, replying in the thread', async () => {
    const inThread = await styleclip(alice, discord.threadId);
    expect(core.invocations.find((c) => c.ctx.requestId === inThread.interactionId)?.target).toEqual({ platform: 'discord', channelId: discord.threadId, messageId: inThread.message.id, threadId: discord.threadId });
  });

  it('edits through the channel API once the interaction token has expired', async () => {
    const { message, jobId } = await styleclip(alice);
    discord.expireTokens();
    core.complete(jobId);
    await discord.waitFor(() => message.attachments.length === 1, 5000, 'result');
    expect(message.history.at(-1)?.via).toBe('channel');
  });

  it('does not even try the token of an interaction older than 15 minutes', async () => {
    const before = discord.requests.length;
    const old = discord.runSlashCommand({ user: alice, channelId: discord.textChannelId, name: 'styleclip', options: { prompt: 'curly hair' }, ageMs: 16 * 60_000 });
    const oldMsg = await discord.waitFor(() => discord.original(old)?.content.startsWith('Queued') && discord.original(old), 5000, 'queued');
    core.complete(`discord:${old}`);
    await discord.waitFor(() => oldMsg.attachments.length === 1, 5000, 'old result');
    expect(oldMsg.history.at(-1)?.via).toBe('channel');
    expect(discord.requests.slice(before).filter((r) => r.status === 401)).toEqual([]);
  });

  it('absorbs a 429 and delivers the result', async () => {
    const { message, jobId } = await styleclip(alice);
    discord.rateLimit('PATCH', /^\/webhooks\//, 0.2, 1);
    core.complete(jobId);
    await discord.waitFor(() => message.attachments.length === 1, 5000, 'result after 429');
    expect(discord.requests.some((r) => r.status === 429)).toBe(true);
  });

  it('gives up cleanly on missing permissions: cancels the job for its requester, and edits no more', async () => {
    const second = await styleclip(alice);
    discord.expireTokens();
    discord.channels.get(discord.textChannelId)!.botCanSend = false;
    try {
      core.emit(second.jobId, { status: 'running', progress: 50 });
      await discord.waitFor(() => discord.requests.some((r) => r.status === 403), 5000, '403');
      // The job can't be shown anywhere, so it is cancelled on its requester's behalf.
      await discord.waitFor(() => core.nudges.some((n) => n.jobId === second.jobId && n.nudge === 'cancel' && n.userId === alice.id), 5000, 'cancel');
      const before = discord.requests.length;
      core.complete(second.jobId);
      await new Promise((r) => setTimeout(r, 300));
      expect(discord.requests.slice(before).filter((r) => r.route.includes(second.message.id))).toEqual([]);
      expect(second.message.content.startsWith('Queued')).toBe(true);
    } finally {
      discord.channels.get(discord.textChannelId)!.botCanSend = true;
    }
  });

  it('fits the upload limit: passes the channel limit, halves it when Discord still says too large', async () => {
    const limit = 4096;
    core.image = (jobId, maxBytes) => ({ bytes: Buffer.alloc(Math.min(6000, maxBytes ?? 6000), 1), mime: 'image/webp', filename: `${jobId.length}.webp` });
    discord.sizeLimit = 3000; // the channel's real limit is lower than what the interaction said
    try {
      const id = discord.runSlashCommand({ user: alice, channelId: discord.textChannelId, name: 'styleclip', options: { prompt: 'curly hair' }, attachmentSizeLimit: limit });
      const msg = await discord.waitFor(() => discord.original(id)?.content.startsWith('Queued') && discord.original(id), 5000, 'queued');
      core.complete(`discord:${id}`);
      await discord.waitFor(() => msg.attachments.length === 1, 5000, 'smaller result');
      expect(core.imageRequests.filter((r) => r.jobId === `discord:${id}`).map((r) => r.maxBytes)).toEqual([limit, limit / 2]);
      expect(msg.attachments[0].size).toBe(limit / 2);
    } finally {
      discord.sizeLimit = 10 * 1024 * 1024;
      core.image = (jobId) => ({ bytes: Buffer.from(`png:${jobId}`), mime: 'image/png', filename: 'styleclip.png' });
    }
  });

  it('after a restart, reactions on old (uncached) results still re-run them, in servers and DMs', async () => {
    const inGuild = await styleclip(alice);
    const inDm = await styleclip(alice, discord.dmChannel(alice).id);
    for (const r of [inGuild, inDm]) core.complete(r.jobId);
    await discord.waitFor(() => inGuild.message.attachments.length === 1 && inDm.message.attachments.length === 1, 5000, 'results');
    await adapter.close();
    adapter = await startDiscordAdapter(core, { DISCORD_TOKEN: discord.botToken, DISCORD_API_BASE: discord.apiBase }, { reactionDebounceMs: 50, logger: pino({ level: 'silent' }) });
    for (const r of [inGuild, inDm]) {
      discord.react(r.message.id, alice, '➖');
      const newJob = await discord.waitFor(() => core.links.get(r.message.id) !== r.jobId && core.links.get(r.message.id), 5000, 'nudge after restart');
      core.complete(newJob);
      await discord.waitFor(() => r.message.content.includes('strength 3'), 5000, 'weaker result');
      expect(r.message.history.at(-1)?.via).toBe('channel');
    }
  });

  it('autocompletes prompts from the core', async () => {
    const id = discord.runSlashCommand({ user: alice, channelId: discord.textChannelId, name: 'styleclip', options: { prompt: 'cu' }, focused: 'prompt' });
    const cb = await discord.waitFor(() => discord.interaction(id).callbacks[0], 5000, 'autocomplete');
    expect(cb.type).toBe(8);
    expect(cb.data).toEqual({ choices: [{ name: 'curly hair', value: 'curly hair' }] });
  });
});
