// Photo jobs end to end: the playground's upload → /styleclip with an image → the worker (engine thread,
// real tiny pack) detects, aligns, inverts, edits and pastes back; ➕/➖ and `source:` reuse the inversion;
// ❌ deletes the photo; bad photos are one-line replies with nothing queued or kept.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/runtime/app.ts';
import { createPlayground, type PlaygroundMessage } from '../src/adapters/playground/index.ts';
import { startOpsServer, type OpsServer } from '../src/runtime/http.ts';
import { createLogger } from '../src/log.ts';
import { keys } from '../src/state/keys.ts';
import { getJSON, MemoryStore } from '../src/state/store.ts';
import { PhotoIntake } from '../src/core/photos.ts';
import { parseInput } from '../src/core/parse.ts';
import { CommandRefusal } from '../src/core/command.ts';
import styleclipCommand from '../commands/styleclip.ts';
import { PHOTO_NOT_OPTIMIZED, type EditJobData, type ResultMeta } from '../src/jobs/types.ts';
import type { PhotoFetcher } from '../src/core/types.ts';
import { decodePhoto } from '../src/engine/photo/index.ts';
import { Redis } from 'ioredis';
import { chromium } from 'playwright-core';
import { collectUpdates, ctxFor, dropPrefix, makeTestBot, makeTestPack, spawnStyleclip, targetFor, tinyPackDir, uniquePrefix, waitExit } from './helpers/core-bot.ts';
import { waitFor } from './helpers/wait.ts';
import { animatedAstronaut, photoFixture, photoPath, pngHeaderOnly, smallFacePhoto } from './helpers/photo-fixtures.ts';

const COUNTING_ENGINE = fileURLToPath(new URL('./helpers/photo-count-engine.ts', import.meta.url));

const upload = (bytes: Buffer, name = 'me.jpg', type = 'image/jpeg') => ({ name, type, data: bytes.toString('base64') });

/** Keys of the in-process store that hold photos (bytes, inversion, W+). */
const photoKeys = (bot: App) => [...((bot.store as MemoryStore as unknown as { values: Map<string, unknown> }).values.keys())].filter((k) => k.startsWith('photo:'));

describe('photo jobs through the playground (tiny pack, engine thread)', () => {
  let bot: App;
  let server: OpsServer;
  const tmp = mkdtempSync(join(tmpdir(), 'photo-jobs-'));
  const encodeLog = join(tmp, 'encoder-calls');
  let logs = '';

  beforeAll(async () => {
    process.env.PHOTO_ENCODE_LOG = encodeLog;
    const logger = createLogger('debug', 'test', new Writable({ write: (chunk, _enc, done) => ((logs += chunk.toString()), done()) }));
    bot = await makeTestBot({ packDir: tinyPackDir(), engineModule: COUNTING_ENGINE, logger });
    const pg = createPlayground(bot, { admins: [] });
    server = await startOpsServer({ host: '127.0.0.1', port: 0, health: async () => ({ ok: true }), metrics: async () => ({ contentType: 'text/plain', text: '' }), routes: pg.routes });
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    await bot?.close();
    delete process.env.PHOTO_ENCODE_LOG;
    rmSync(tmp, { recursive: true, force: true });
  });

  async function api(path: string, body?: unknown) {
    const res = await fetch(server.url + path, body ? { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {});
    return { status: res.status, json: (await res.json()) as any };
  }
  const messages = async () => (await api('/api/messages')).json.messages as PlaygroundMessage[];
  const replyTo = (id: string, final = ['completed', 'failed', 'error', 'info']) => waitFor(async () => (await messages()).find((m) => m.replyTo === id && final.includes(m.status ?? '')), 60_000);
  const encoderCalls = () => (existsSync(encodeLog) ? readFileSync(encodeLog, 'utf8').split('\n').filter(Boolean).length : 0);
  const image = async (url: string) => {
    const res = await fetch(server.url + url);
    expect(res.status).toBe(200);
    return Buffer.from(await res.arrayBuffer());
  };

  it('edits the uploaded astronaut: the whole photo with the edited face, and the aligned before → after; ➕ and source: reuse the inversion; ❌ deletes the photo', async () => {
    const astronaut = photoFixture('astronaut.jpg');
    const posted = await api('/api/messages', { user: 'alice', text: '/styleclip curly hair threshold:0 strength:3', image: upload(astronaut) });
    expect(posted.status, JSON.stringify(posted.json)).toBe(200);
    const first = await replyTo(posted.json.id);
    expect(first.status, first.text).toBe('completed');
    expect(first.text).toMatch(/your photo \(face score 0\.9\d\)/);
    expect(first.text).toMatch(/kept only while this result is/);
    expect(first.beforeAfterUrl).toBe(`/api/images/${first.jobId}/before-after`);
    expect((await messages()).find((m) => m.id === posted.json.id)?.attachment).toEqual({ name: 'me.jpg', size: astronaut.length });

    // The main image is the photo with the face pasted back: far from the face, the decoded photo's own pixels.
    const main = await sharp(await image(first.imageUrl!)).raw().toBuffer({ resolveWithObject: true });
    const photo = await decodePhoto(astronaut);
    expect([main.info.width, main.info.height]).toEqual([photo.width, photo.height]);
    // Above and below her face (the crop spans rows ~26–190 of 512): byte-identical to the decoded photo.
    const rows = (buf: Uint8Array, from: number, to: number) => Buffer.from(buf.subarray(photo.width * 3 * from, photo.width * 3 * to));
    expect(rows(main.data, 0, 20).equals(rows(photo.rgb, 0, 20))).toBe(true);
    expect(rows(main.data, 200, 512).equals(rows(photo.rgb, 200, 512))).toBe(true);
    expect(rows(main.data, 60, 160).equals(rows(photo.rgb, 60, 160))).toBe(false);
    const strip = await sharp(await image(first.beforeAfterUrl!)).metadata();
    expect([strip.width, strip.height]).toEqual([512, 256]);
    expect(encoderCalls()).toBe(1);

    // Job data and the result meta name the photo by key only; the logs hold nothing of it.
    const data = (await getJSON<EditJobData>(bot.store, keys.job(first.jobId!)))!;
    expect(data.source).toEqual({ kind: 'photo', key: expect.stringMatching(/^[\w-]{16}$/) });
    expect(JSON.stringify(data).length).toBeLessThan(2000);
    const key = (data.source as { key: string }).key;
    const meta = (await getJSON<ResultMeta>(bot.store, keys.resultMeta(first.jobId!)))!;
    expect(meta.photo).toMatchObject({ key, facesFound: 1, firstFrameOnly: false, inverted: true });
    expect(logs).toContain(first.jobId!);
    expect(logs).not.toContain(astronaut.subarray(100, 140).toString('base64'));
    expect(logs).not.toContain(key);

    // ➕: the same photo, stronger, from the stored inversion.
    const plus = await api(`/api/messages/${first.id}/reactions`, { user: 'alice', emoji: '➕' });
    const stronger = await waitFor(async () => (await messages()).find((m) => m.id === plus.json.id && m.status === 'completed'), 60_000);
    expect(stronger.text).toMatch(/strength 4\.5 .*your photo/);
    expect((await getJSON<ResultMeta>(bot.store, keys.resultMeta(stronger.jobId!)))!.photo).toMatchObject({ key, inverted: false });
    // source: a further edit of the first result, pasted back into the same photo.
    const further = await api('/api/messages', { user: 'alice', text: `/styleclip smiling threshold:0 strength:2 source:${first.jobId}` });
    const chained = await replyTo(further.json.id);
    expect(chained.status, chained.text).toBe('completed');
    expect(chained.beforeAfterUrl).toBeDefined();
    expect((await sharp(await image(chained.imageUrl!)).metadata()).width).toBe(photo.width);
    expect(encoderCalls()).toBe(1); // no second inversion
    expect(readFileSync(encodeLog, 'utf8')).toBe('1 worker\n'); // and it ran in the engine thread, off the bot's event loop

    // ❌ on the first result: the result, the photo and its inversion are gone.
    expect(photoKeys(bot).sort()).toEqual([keys.photo(key), keys.photoInversion(key), keys.photoWplus(key)].sort());
    await api(`/api/messages/${first.id}/reactions`, { user: 'alice', emoji: '❌' });
    await waitFor(async () => ((await bot.store.get(keys.resultMeta(first.jobId!))) ? undefined : true));
    expect(photoKeys(bot)).toEqual([]);
    expect(await bot.store.get(keys.resultBeforeAfter(first.jobId!))).toBeNull();
    // A ➖ on the other result now says the photo is gone.
    const minus = await api(`/api/messages/${stronger.id}/reactions`, { user: 'alice', emoji: '➖' });
    const gone = await waitFor(async () => (await messages()).find((m) => m.id === minus.json.id && m.status === 'failed'), 60_000);
    expect(gone.text).toMatch(/photo has expired or was deleted/);
  }, 120_000);

  it('bad photos: one-line replies; nothing queued, nothing kept', async () => {
    // (A truncated JPEG has a readable header: the worker's decode refuses it, see the next test.)
    const cases: [string, Buffer, RegExp][] = [
      ['notes.jpg', Buffer.from('these are not pixels'), /^The file is not an image/],
      ['bomb.png', pngHeaderOnly(100_000, 100_000), /^The image is 100000×100000 .*limit is 40 MP\.$/],
    ];
    for (const [name, bytes, pattern] of cases) {
      const posted = await api('/api/messages', { user: 'bob', text: '/styleclip smile', image: upload(bytes, name) });
      const reply = await replyTo(posted.json.id);
      expect(reply.status, name).toBe('error');
      expect(reply.text).toMatch(pattern);
      expect(reply.text.split('\n')).toHaveLength(1);
      expect(reply.jobId).toBeUndefined();
    }
    expect(photoKeys(bot)).toEqual([]);
    const help = await api('/api/messages', { user: 'bob', text: '/styleclip-help' });
    expect((await replyTo(help.json.id)).text).toMatch(/Your own photo: attach one with a face to `\/styleclip`[\s\S]*Privacy/);
    // A text file labelled as such is refused from its type alone.
    const txt = await api('/api/messages', { user: 'bob', text: '/styleclip smile', image: upload(Buffer.from('hi'), 'a.txt', 'text/plain') });
    expect((await replyTo(txt.json.id)).text).toMatch(/not an image/);
    // image with seed: refused.
    const both = await api('/api/messages', { user: 'bob', text: '/styleclip smile seed:3', image: upload(photoFixture('astronaut.jpg')) });
    expect((await replyTo(both.json.id)).text).toMatch(/Give one of image, seed or source/);
    // image:… typed as text is not a file.
    const typed = await api('/api/messages', { user: 'bob', text: '/styleclip smile image:me.jpg' });
    expect((await replyTo(typed.json.id)).text).toMatch(/Option image takes a file/);
    expect(photoKeys(bot)).toEqual([]);
  });

  it('a photo with method:optimize is refused up front: optimization starts from a seed or a result', async () => {
    const posted = await api('/api/messages', { user: 'bob', text: '/styleclip smile method:optimize', image: upload(photoFixture('astronaut.jpg')) });
    expect((await replyTo(posted.json.id)).text).toBe(PHOTO_NOT_OPTIMIZED);
    expect(photoKeys(bot)).toEqual([]);
  });

  it('no face, a face too small, a corrupt file: the job fails with the one-line reason and the photo is deleted', async () => {
    const cases: [Buffer, RegExp][] = [
      [photoFixture('coffee.jpg'), /^Edit failed: no face found in the photo/],
      [await smallFacePhoto(), /^Edit failed: the face is too small to edit: its eyes are 2\d px apart, at least 32 px are needed/],
      [photoFixture('astronaut.jpg').subarray(0, 3000), /^Edit failed: the jpeg file is corrupt or truncated/],
    ];
    for (const [bytes, pattern] of cases) {
      const posted = await api('/api/messages', { user: 'carol', text: '/styleclip smile', image: upload(bytes) });
      const reply = await replyTo(posted.json.id);
      expect(reply.status).toBe('failed');
      expect(reply.text).toMatch(pattern);
      expect(reply.text.split('\n')).toHaveLength(1);
    }
    expect(photoKeys(bot)).toEqual([]);
  }, 60_000);

  it('an animated GIF: its first frame is edited, and the replies say so', async () => {
    const posted = await api('/api/messages', { user: 'dave', text: '/styleclip smile threshold:0', image: upload(await animatedAstronaut(), 'a.gif', 'image/gif') });
    const queued = await waitFor(async () => (await messages()).find((m) => m.replyTo === posted.json.id && m.jobId));
    const reply = await replyTo(posted.json.id);
    expect(reply.status, reply.text).toBe('completed');
    expect(reply.text).toMatch(/Animated image: its first frame was edited/);
    expect(queued.jobId).toBe(reply.jobId);
  }, 60_000);

  it('an upload over the size limit is refused before its body is read', async () => {
    const res = await fetch(server.url + '/api/messages', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'erin', text: '/styleclip smile', image: { name: 'big.jpg', type: 'image/jpeg', data: 'A'.repeat(15 * 1024 * 1024) } }),
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toMatch(/photos up to 10 MB/);
  });
});

describe('photo intake and the attachment option (core)', () => {
  it('checks the platform-reported size before any download; fetches only platform-hosted URLs', async () => {
    const store = new MemoryStore();
    const intake = new PhotoIntake(store, 60, { maxBytes: 1000, maxPixels: 40_000_000 });
    const fetched: string[] = [];
    const fetcher: PhotoFetcher = {
      hosts: (url) => url.startsWith('https://cdn.example/'),
      fetch: async (url) => {
        fetched.push(url);
        return new Uint8Array(await sharp({ create: { width: 8, height: 8, channels: 3, background: '#888' } }).png().toBuffer());
      },
    };
    intake.setFetcher('discord', fetcher);
    expect(await intake.accept('discord', { url: 'https://cdn.example/a.png', size: 5000 })).toEqual({ refusal: 'The image is 0.0 MB; the limit is 0.0 MB.' });
    expect(await intake.accept('discord', { url: 'https://elsewhere.example/a.png', size: 100 })).toEqual({ refusal: expect.stringMatching(/hosted by this platform/) });
    expect(await intake.accept('slack', { url: 'https://cdn.example/a.png', size: 100 })).toEqual({ refusal: expect.stringMatching(/hosted by this platform/) });
    expect(fetched).toEqual([]);
    const ok = await intake.accept('discord', { url: 'https://cdn.example/a.png', size: 100, contentType: 'image/png' });
    expect(ok).toEqual({ key: expect.any(String), animated: false });
    expect(fetched).toEqual(['https://cdn.example/a.png']);
    expect((await store.get(keys.photo((ok as { key: string }).key)))?.subarray(1, 4).toString()).toBe('PNG');
    await intake.drop((ok as { key: string }).key);
    expect(await store.get(keys.photo((ok as { key: string }).key))).toBeNull();
    await store.close();
  });

  it('/styleclip defines an attachment option; text input fills it from the files sent with it', () => {
    const def = styleclipCommand.definition;
    expect(def.options.find((o) => o.name === 'image')).toMatchObject({ type: 'attachment' });
    const file = { size: 3, bytes: new Uint8Array([1, 2, 3]), name: 'a.jpg' };
    expect(parseInput(def, { kind: 'text', text: 'curly hair', attachments: [file] }).options).toEqual({ prompt: 'curly hair', image: file });
    expect(parseInput(def, { kind: 'options', options: { prompt: 'x', image: file } }).options.image).toBe(file);
    expect(() => parseInput(def, { kind: 'options', options: { prompt: 'x', image: '123456' } })).toThrow(CommandRefusal);
    expect(() => parseInput(def, { kind: 'text', text: 'x', attachments: [file, file] })).toThrow(/Too many files/);
  });

  it('a pack without an encoder refuses photos before storing them', async () => {
    const bot = await makeTestBot({ packDir: makeTestPack() });
    try {
      const reply = await bot.invoke(
        'styleclip',
        { kind: 'text', text: 'smile', attachments: [{ size: 3, bytes: new Uint8Array([1, 2, 3]) }] },
        { platform: 'playground', serverId: 's', channelId: 'c', user: { id: 'u' }, isPlatformAdmin: false, requestId: 'r1' },
        { platform: 'playground', channelId: 'c' },
      );
      expect(reply).toMatchObject({ error: true, text: expect.stringMatching(/has no image encoder/) });
      expect(photoKeys(bot)).toEqual([]);
      const help = await bot.invoke('styleclip-help', { kind: 'text', text: '' }, { platform: 'playground', serverId: 's', channelId: 'c', user: { id: 'u' }, isPlatformAdmin: false, requestId: 'r2' }, { platform: 'playground', channelId: 'c' });
      expect(help.text).toMatch(/no image encoder, so it edits random faces only/);
      expect(help.text).toMatch(/Privacy: a photo is kept only as long as its result and never logged/);
    } finally {
      await bot.close();
    }
  });
});

describe('photo jobs with Redis (BullMQ queue, Redis store)', () => {
  const REDIS = 'redis://127.0.0.1:6379';

  it('a photo edit completes; ➕ and ↩ reuse the stored inversion; ❌ leaves no photo key in Redis', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'photo-redis-'));
    const encodeLog = join(tmp, 'encoder-calls');
    process.env.PHOTO_ENCODE_LOG = encodeLog;
    const prefix = uniquePrefix('photo');
    const bot = await makeTestBot({ packDir: tinyPackDir(), engineModule: COUNTING_ENGINE, redisUrl: REDIS, prefix, worker: true });
    const redis = new Redis(REDIS);
    const photoKeysInRedis = async () => (await redis.keys(`${prefix}:photo:*`)).sort();
    try {
      const updates = collectUpdates(bot);
      const ctx = ctxFor('alice');
      const astronaut = photoFixture('astronaut.jpg');
      const reply = await bot.invoke('styleclip', { kind: 'text', text: 'smile threshold:0', attachments: [{ size: astronaut.length, bytes: astronaut }] }, ctx, targetFor(ctx));
      const done = await updates.final(reply.job!.id, 60_000);
      expect(done.status, done.text).toBe('completed');
      expect(done.beforeAfter).toBe(true);
      expect((await bot.resultImage(reply.job!.id, undefined, 'before-after'))?.filename).toBe(`${reply.job!.id}-before-after.png`);
      const nudged = await bot.nudge(reply.job!.id, 'stronger', 'alice', `k-${prefix}`, targetFor(ctx));
      const second = await updates.final(nudged!.job!.id, 60_000);
      expect(second.status, second.text).toBe('completed');
      // ↩ original: the photo's reconstruction (strength 0), pasted back, from the same inversion.
      const original = await bot.nudge(second.jobId, 'original', 'alice', `o-${prefix}`, targetFor(ctx));
      const third = await updates.final(original!.job!.id, 60_000);
      expect(third.status, third.text).toBe('completed');
      expect(third.text).toMatch(/strength 0 .*your photo/);
      expect(readFileSync(encodeLog, 'utf8')).toBe('1 worker\n');
      expect(await photoKeysInRedis()).toHaveLength(3);
      await bot.cancel(reply.job!.id, 'alice', `x-${prefix}`);
      expect(await photoKeysInRedis()).toEqual([]);
      expect(await redis.keys(`${prefix}:result:${reply.job!.id}:*`)).toEqual([]);
    } finally {
      redis.disconnect();
      await bot.close();
      await dropPrefix(REDIS, prefix);
      delete process.env.PHOTO_ENCODE_LOG;
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('the playground page: attach a photo, see the edit pasted back and the before → after', () => {
  it('uploads the astronaut from the file input and shows both images', async () => {
    const app = await spawnStyleclip('start', { STYLECLIP_PACK: tinyPackDir(), REDIS_URL: '', DISCORD_TOKEN: '', SLACK_BOT_TOKEN: '' });
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    });
    try {
      const page = await browser.newPage();
      await page.goto(app.url);
      await page.fill('#user', 'alice');
      await page.setInputFiles('input[name=image]', photoPath('astronaut.jpg'));
      await page.fill('input[name=text]', '/styleclip curly hair threshold:0');
      await page.press('input[name=text]', 'Enter');
      await page.locator('.attachment').first().waitFor({ timeout: 10_000 });
      await expect(page.locator('.attachment').first().textContent()).resolves.toMatch(/📎 astronaut\.jpg \(55 KB\)/);
      await page.locator('img.before-after').waitFor({ timeout: 60_000 });
      await page.waitForFunction(() => {
        const main = document.querySelector('img.result.photo') as HTMLImageElement | null;
        const strip = document.querySelector('img.before-after') as HTMLImageElement | null;
        return !!main && main.complete && main.naturalWidth === 512 && !!strip && strip.complete && strip.naturalWidth === 512 && strip.naturalHeight === 256;
      });
      await expect(page.locator('.msg.bot[data-status=completed] .text').first().textContent()).resolves.toMatch(/your photo \(face score 0\.9\d\)/);
      // The file input is cleared after sending: the next command is a plain one.
      await expect(page.locator('input[name=image]').evaluate((i) => (i as HTMLInputElement).files?.length)).resolves.toBe(0);
    } finally {
      await browser.close();
      app.kill('SIGTERM');
      await waitExit(app);
    }
  }, 120_000);
});
