// "Edit your own photo" on Discord: the real discord.js client and bot core (tiny pack, engine thread,
// encoder calls counted) against the fake Discord, whose CDN route serves the attached files and counts
// downloads. An image in → the pasted-back edit and the aligned before → after out; ➕ without a second
// inversion; a non-image, an oversized file and a URL on another host refused before any download.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/runtime/app.ts';
import type { AdapterHandle } from '../src/core/types.ts';
import { silentLogger } from '../src/log.ts';
import { startDiscordAdapter } from '../src/adapters/discord/index.ts';
import { discordPhotoFetcher } from '../src/adapters/discord/photos.ts';
import { toDiscordCommands } from '../src/adapters/discord/command-json.ts';
import styleclipCommand from '../commands/styleclip.ts';
import { FakeDiscord, listenLocal, type FakeMessage, type FakeUser, type UserFile } from './fakes/discord/fake-discord.ts';
import { makeTestBot, tinyPackDir } from './helpers/core-bot.ts';
import { photoFixture } from './helpers/photo-fixtures.ts';

const COUNTING_ENGINE = fileURLToPath(new URL('./helpers/photo-count-engine.ts', import.meta.url));
const alice: FakeUser = { id: '200000000000000001', username: 'alice' };

describe('Discord photo fetcher', () => {
  it('registers /styleclip image as an attachment option (type 11)', () => {
    const [json] = toDiscordCommands([styleclipCommand.definition]) as unknown as { options: { name: string; type: number; required: boolean }[] }[];
    expect(json.options.find((o) => o.name === 'image')).toMatchObject({ type: 11, required: false });
  });

  it("accepts only Discord's own file hosts in production", () => {
    const f = discordPhotoFetcher({});
    expect(f.hosts('https://cdn.discordapp.com/attachments/1/2/me.jpg?ex=1&is=2&hm=3')).toBe(true);
    expect(f.hosts('https://media.discordapp.net/attachments/1/2/me.jpg')).toBe(true);
    for (const url of ['http://cdn.discordapp.com/attachments/1/2/me.jpg', 'https://cdn.discordapp.com.evil.example/x.jpg', 'https://evil.example/?https://cdn.discordapp.com/x',
      'https://user@cdn.discordapp.com/x.jpg', 'http://127.0.0.1:8080/attachments/1/me.jpg', 'file:///etc/passwd', 'not a url']) {
      expect(f.hosts(url), url).toBe(false);
    }
    // A stand-in for Discord (DISCORD_API_BASE) serves its own attachments.
    expect(discordPhotoFetcher({ DISCORD_API_BASE: 'http://127.0.0.1:8080/api' }).hosts('http://127.0.0.1:8080/attachments/1/me.jpg')).toBe(true);
  });
});

describe('Discord /styleclip image:<attachment> (tiny pack, engine thread)', () => {
  let discord: FakeDiscord;
  let bot: App;
  let adapter: AdapterHandle;
  const tmp = mkdtempSync(join(tmpdir(), 'discord-photos-'));
  const encodeLog = join(tmp, 'encoder-calls');
  const encoderCalls = () => (existsSync(encodeLog) ? readFileSync(encodeLog, 'utf8').split('\n').filter(Boolean).length : 0);

  beforeAll(async () => {
    process.env.PHOTO_ENCODE_LOG = encodeLog;
    discord = await new FakeDiscord().start();
    bot = await makeTestBot({ packDir: tinyPackDir(), engineModule: COUNTING_ENGINE, logger: silentLogger });
    adapter = await startDiscordAdapter(bot, { DISCORD_TOKEN: discord.botToken, DISCORD_API_BASE: discord.apiBase }, { throttleMs: 300, reactionDebounceMs: 300, logger: silentLogger });
  }, 60_000);
  afterAll(async () => {
    await adapter?.close();
    await bot?.close();
    await discord?.close();
    delete process.env.PHOTO_ENCODE_LOG;
    rmSync(tmp, { recursive: true, force: true });
  });

  const run = (options: Record<string, string | number>, image: UserFile) =>
    discord.runSlashCommand({ user: alice, channelId: discord.textChannelId, name: 'styleclip', options, attachments: { image } });
  const refusal = async (id: string) => {
    const msg = await discord.waitFor(() => [discord.original(id), ...discord.followups(id)].find((m) => m && !m.deleted && m.embeds.length), 15_000, 'refusal');
    expect(msg!.flags & 64).toBe(64);
    return String(msg!.embeds[0].description);
  };
  const result = (id: string): Promise<FakeMessage> => discord.waitFor(() => discord.original(id)?.attachments.length && discord.original(id), 60_000, 'result');

  it('edits the attached photo: the pasted-back photo and, beside it, the aligned before → after; ➕ is stronger without a second inversion', async () => {
    const astronaut = photoFixture('astronaut.jpg');
    const id = run({ prompt: 'curly hair', threshold: 0, strength: 3 }, { filename: 'me.jpg', contentType: 'image/jpeg', data: astronaut });
    const message = await result(id);
    expect(message.content).toMatch(/your photo/);
    expect(message.attachments).toHaveLength(2);
    const [main, strip] = message.attachments;
    expect(strip.filename).toMatch(/-before-after\.png$/);
    const photo = await sharp(astronaut).metadata();
    const pasted = await sharp(main.data).metadata();
    expect([pasted.width, pasted.height]).toEqual([photo.width, photo.height]);
    const ba = await sharp(strip.data).metadata();
    expect([ba.width, ba.height]).toEqual([512, 256]);
    expect(discord.cdnDownloads).toBe(1);
    expect(encoderCalls()).toBe(1);

    await discord.waitFor(() => message.reactions.get('❌')?.includes(discord.bot.id), 5000, 'seed reactions');
    discord.react(message.id, alice, '➕');
    // The same message, re-run stronger: again the pasted-back photo beside the before → after.
    const firstMain = Buffer.from(main.data);
    const stronger = await discord.waitFor(() => /strength 4\.5/.test(message.content) && message.attachments.length === 2 && !message.attachments[0].data.equals(firstMain) && message, 60_000, 'stronger result');
    expect(stronger.content).toMatch(/your photo/);
    expect(encoderCalls()).toBe(1); // the stored W+, no second inversion
    expect(discord.cdnDownloads).toBe(1); // and no second download
  }, 120_000);

  it('refuses a non-image attachment before downloading it', async () => {
    const before = discord.cdnDownloads;
    const id = run({ prompt: 'curly hair' }, { filename: 'notes.txt', contentType: 'text/plain', data: Buffer.from('hello') });
    expect(await refusal(id)).toMatch(/not an image/);
    expect(discord.cdnDownloads).toBe(before);
  });

  it('refuses an oversized attachment by the size Discord reports, before downloading it', async () => {
    const before = discord.cdnDownloads;
    const id = run({ prompt: 'curly hair' }, { filename: 'huge.jpg', contentType: 'image/jpeg', data: photoFixture('astronaut.jpg'), size: 25 * 1024 * 1024 });
    expect(await refusal(id)).toMatch(/limit is 10 MB/);
    expect(discord.cdnDownloads).toBe(before);
  });

  it('never fetches an attachment URL on another host', async () => {
    let hits = 0;
    const elsewhere = createServer((_req, res) => { hits++; res.end('x'); });
    const port = await listenLocal(elsewhere);
    try {
      const id = run({ prompt: 'curly hair' }, { filename: 'me.jpg', contentType: 'image/jpeg', data: photoFixture('astronaut.jpg'), url: `http://127.0.0.1:${port}/attachments/1/me.jpg` });
      expect(await refusal(id)).toMatch(/hosted by this platform/);
      expect(hits).toBe(0);
    } finally {
      elsewhere.close();
    }
  });
});
