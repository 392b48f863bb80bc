// Buttons under a Discord result (message components), end to end: the real discord.js client and the real
// bot core (fake engine) against the fake Discord. Each button does what its reaction does, refuses what the
// reaction refuses (answered privately), and a double delivery of one press makes one job.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDiscordAdapter } from '../src/adapters/discord/index.ts';
import { silentLogger } from '../src/log.ts';
import { keys } from '../src/state/keys.ts';
import type { AdapterHandle, JobUpdate } from '../src/core/types.ts';
import type { App } from '../src/runtime/app.ts';
import { FakeDiscord, Permission, type FakeMessage, type FakeUser } from './fakes/discord/fake-discord.ts';
import { makeTestBot } from './helpers/core-bot.ts';

const [alice, bob, admin]: FakeUser[] = ['alice', 'bob', 'admin'].map((username, i) => ({ id: `30000000000000000${i + 1}`, username }));
const completed: JobUpdate[] = [];
let discord: FakeDiscord, bot: App, adapter: AdapterHandle;

beforeAll(async () => {
  discord = await new FakeDiscord().start();
  bot = await makeTestBot();
  bot.onUpdate('discord', (u) => void (u.status === 'completed' && completed.push(u)));
  adapter = await startDiscordAdapter(bot, { DISCORD_TOKEN: discord.botToken, DISCORD_API_BASE: discord.apiBase }, {
    throttleMs: 100,
    reactionDebounceMs: 100,
    logger: silentLogger,
  });
});

afterAll(async () => {
  await adapter?.close();
  await bot?.close();
  await discord?.close();
});

const strengthOf = (m: FakeMessage) => Number(/strength (-?[\d.]+)/.exec(m.content)?.[1]);
const seedOf = (m: FakeMessage) => Number(/seed (\d+)/.exec(m.content)?.[1]);
const jobOf = (m: FakeMessage) => /job (\S+)/.exec(m.content)?.[1];

/** Runs `/styleclip` and waits for its result (image and buttons). */
async function result(user: FakeUser, options: Record<string, string | number>): Promise<FakeMessage> {
  const id = discord.runSlashCommand({ user, channelId: discord.textChannelId, name: 'styleclip', options });
  return discord.waitFor(() => discord.original(id)?.components.length && discord.original(id), 10_000, 'result with buttons');
}

/** Waits until the message shows a finished result other than `jobId`. */
function nextResult(message: FakeMessage, jobId: string | undefined): Promise<FakeMessage> {
  return discord.waitFor(() => message.components.length && jobOf(message) !== jobId && message, 10_000, 'the next result');
}

/** Presses the button with `emoji`; resolves with the interaction id once it is acknowledged. */
async function press(message: FakeMessage, user: FakeUser, emoji: string): Promise<string> {
  const customId = discord.buttonId(message.id, emoji);
  if (!customId) throw new Error(`no ${emoji} button on ${message.id}`);
  const id = discord.pressButton(message.id, user, customId);
  await discord.waitFor(() => discord.interaction(id).acked, 3000, 'the press acknowledged');
  return id;
}

/** The private answer to a press. */
function privateAnswer(id: string): Promise<FakeMessage> {
  return discord.waitFor(() => discord.followups(id)[0], 5000, 'a private answer');
}

const jobsOf = async (user: FakeUser) => (await bot.queue.inFlight()).filter((j) => j.data.requesterId === user.id);

describe('discord result buttons', () => {
  it('a result has ➕ ➖ 🎲 ↩ ❌ buttons whose ids name the action and the job', async () => {
    const message = await result(alice, { prompt: 'blue eyes', seed: 7 });
    const buttons = message.components.flatMap((r) => r.components);
    expect(buttons.map((b) => b.emoji?.name)).toEqual(['➕', '➖', '🎲', '↩', '❌']);
    expect(buttons.map((b) => b.label)).toEqual(['stronger', 'weaker', 'new face', 'original', 'delete']);
    const jobId = jobOf(message);
    expect(buttons.map((b) => b.custom_id)).toEqual(['stronger', 'weaker', 'reroll', 'original', 'cancel'].map((a) => `sc:${a}:${jobId}`));
    expect(message.attachments).toHaveLength(1);
  });

  it('➕ re-runs stronger on the same message, acknowledged with a deferred update; a double delivery makes one job', async () => {
    const message = await result(alice, { prompt: 'blue eyes', seed: 8 });
    const first = jobOf(message);
    const id = await press(message, alice, '➕');
    discord.redeliver(id); // the same interaction again
    const stronger = await nextResult(message, first);
    expect(discord.interaction(id).callbacks.map((c) => [c.type, c.status])).toEqual([[6, 200]]);
    expect(strengthOf(stronger)).toBeCloseTo(4.1 * 1.5, 2);
    expect(seedOf(stronger)).toBe(8);
    await new Promise((r) => setTimeout(r, 500)); // room for a wrongly handled duplicate to show up
    expect(completed.filter((u) => u.text.includes('seed 8'))).toHaveLength(2); // the first result and one stronger
    expect(jobOf(message)).toBe(jobOf(stronger));
    expect(discord.followups(id)).toEqual([]);
    expect(await jobsOf(alice)).toEqual([]);
  });

  it('someone else pressing a button is told privately that only the requester can, and nothing runs', async () => {
    const message = await result(alice, { prompt: 'blue eyes', seed: 9 });
    for (const emoji of ['➕', '🎲', '❌']) {
      const answer = await privateAnswer(await press(message, bob, emoji));
      expect(answer.flags & 64).toBe(64);
      expect(answer.content).toMatch(/^Only the person who asked for this edit can /);
    }
    expect(await jobsOf(alice)).toEqual([]);
    expect(await jobsOf(bob)).toEqual([]);
    expect(message.deleted).toBe(false);
  });

  it('a press the server rules refuse is refused as the reaction would be, privately', async () => {
    const set = discord.runSlashCommand({ user: admin, channelId: discord.textChannelId, name: 'styleclip-admin', subcommand: 'set', options: { key: 'strength-max', value: '4.1' }, permissions: Permission.ManageGuild });
    await discord.waitFor(() => discord.original(set)?.content.startsWith('Set strength-max'), 5000, 'setting saved');
    try {
      const message = await result(alice, { prompt: 'blue eyes', seed: 10 });
      const answer = await privateAnswer(await press(message, alice, '➕'));
      expect(answer.content).toContain('Strength is already 4.1');
      expect(await jobsOf(alice)).toEqual([]);
    } finally {
      const reset = discord.runSlashCommand({ user: admin, channelId: discord.textChannelId, name: 'styleclip-admin', subcommand: 'reset', options: { key: 'strength-max' }, permissions: Permission.ManageGuild });
      await discord.waitFor(() => discord.original(reset)?.content.startsWith('Reset'), 5000, 'setting reset');
    }
  });

  it('➖ re-runs weaker; 🎲 runs the same edit on a new face; ↩ shows the original face (strength 0, same seed)', async () => {
    const message = await result(alice, { prompt: 'blue eyes', seed: 11 });
    let shown = jobOf(message);
    await press(message, alice, '➖');
    const weaker = await nextResult(message, shown);
    expect(strengthOf(weaker)).toBeCloseTo(4.1 / 1.5, 2);
    shown = jobOf(weaker);

    await press(message, alice, '🎲');
    const rerolled = await nextResult(message, shown);
    expect(rerolled.content).toContain('**blue eyes**');
    expect(strengthOf(rerolled)).toBeCloseTo(4.1 / 1.5, 2);
    expect(seedOf(rerolled)).not.toBe(11);
    shown = jobOf(rerolled);
    const rerolledSeed = seedOf(rerolled);

    await press(message, alice, '↩');
    const original = await nextResult(message, shown);
    expect(strengthOf(original)).toBe(0);
    expect(seedOf(original)).toBe(rerolledSeed);
    // The original itself has nothing to nudge or go back to.
    expect(original.components.flatMap((r) => r.components).map((b) => b.emoji?.name)).toEqual(['🎲', '❌']);
  });

  it('🎲 is offered for faces made from a seed only (not for an edit of an earlier result)', async () => {
    const first = await result(alice, { prompt: 'blue eyes', seed: 12 });
    const further = await result(alice, { prompt: 'smile', source: jobOf(first)! });
    expect(further.components.flatMap((r) => r.components).map((b) => b.emoji?.name)).toEqual(['➕', '➖', '↩', '❌']);
    const before = jobOf(further);
    await press(further, alice, '↩');
    const original = await nextResult(further, before);
    expect([strengthOf(original), seedOf(original)]).toEqual([0, 12]);
  });

  it('❌ deletes the result; buttons of a deleted or expired result answer privately that it is gone', async () => {
    const message = await result(alice, { prompt: 'blue eyes', seed: 13 });
    const jobId = jobOf(message)!;
    const stale = { ...message, components: message.components }; // the buttons as a client still shows them
    await press(message, alice, '❌');
    await discord.waitFor(() => message.deleted, 5000, 'message deleted');
    expect(await bot.resultImage(jobId)).toBeNull();

    // A client that still shows the buttons (e.g. a cached copy): the press finds nothing to act on.
    message.deleted = false;
    const id = discord.pressButton(stale.id, alice, `sc:stronger:${jobId}`);
    expect((await privateAnswer(id)).content).toBe('This result is gone: it was deleted or has expired.');

    const expiring = await result(alice, { prompt: 'blue eyes', seed: 14 });
    await bot.store.del(keys.job(jobOf(expiring)!)); // what RESULT_TTL_S does
    expect((await privateAnswer(await press(expiring, bob, '➕'))).content).toContain('This result is gone');
    expect(await jobsOf(alice)).toEqual([]);
  });

  it('spoiler on: the result is a spoiler attachment (SPOILER_ name), buttons as usual', async () => {
    const set = (value: string) => {
      const id = discord.runSlashCommand({ user: admin, channelId: discord.textChannelId, name: 'styleclip-admin', subcommand: 'set', options: { key: 'spoiler', value }, permissions: Permission.ManageGuild });
      return discord.waitFor(() => discord.original(id)?.content.startsWith('Set spoiler') && discord.original(id), 5000, 'setting saved');
    };
    expect((await set('on')).content).toContain('spoiler: on');
    try {
      const message = await result(alice, { prompt: 'blue eyes', seed: 15 });
      expect(message.attachments.map((a) => a.filename)).toEqual([`SPOILER_${jobOf(message)}.png`]);
      expect(message.components.flatMap((r) => r.components)).toHaveLength(5);
    } finally {
      await set('off');
    }
    const plain = await result(alice, { prompt: 'blue eyes', seed: 16 });
    expect(plain.attachments[0].filename).toBe(`${jobOf(plain)}.png`);
  });
});
