// "Edit with StyleCLIP" on Slack: a message shortcut on a message with a photo → a modal asking for the
// prompt → the edit posted in the message's thread: the pasted-back photo and the aligned before → after.
// The real Bolt app and bot core (tiny pack, engine thread, encoder calls counted) against the fake Slack,
// whose url_private route serves files to the bot token only and counts downloads.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/runtime/app.ts';
import { PHOTO_MODAL, PHOTO_SHORTCUT, slackPhotoFetcher } from '../src/adapters/slack/photos.ts';
import { ALICE, CHANNEL, slackSetup, strengthIn, type SlackSetup } from './fakes/slack/setup.ts';
import { makeTestBot, tinyPackDir } from './helpers/core-bot.ts';
import { photoFixture } from './helpers/photo-fixtures.ts';
import { silentLogger } from '../src/log.ts';

const COUNTING_ENGINE = fileURLToPath(new URL('./helpers/photo-count-engine.ts', import.meta.url));

describe('Slack photo fetcher', () => {
  it('the manifest declares the message shortcut and files:read', () => {
    const manifest = readFileSync('deploy/slack-manifest.yml', 'utf8');
    expect(manifest).toMatch(new RegExp(`shortcuts:\\s*\\n(\\s*#.*\\n)?\\s*- name: Edit with StyleCLIP\\s*\\n\\s*type: message\\s*\\n\\s*callback_id: ${PHOTO_SHORTCUT}\\b`));
    expect(manifest).toMatch(/^\s*- files:read\b/m);
  });

  it("accepts only Slack's file host in production, and sends the bot token", async () => {
    const f = slackPhotoFetcher('xoxb-1');
    expect(f.hosts('https://files.slack.com/files-pri/T1-F1/me.jpg')).toBe(true);
    for (const url of ['http://files.slack.com/files-pri/T1-F1/me.jpg', 'https://files.slack.com.evil.example/x', 'https://evil.example/files-pri/T1-F1/me.jpg', 'https://slack.com/x.jpg', 'not a url']) {
      expect(f.hosts(url), url).toBe(false);
    }
    let auth: string | undefined;
    const server = createServer((req, res) => ((auth = req.headers.authorization), res.end('abc')));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const local = slackPhotoFetcher('xoxb-1', `${base}/api/`);
      expect(Buffer.from(await local.fetch(`${base}/files-pri/T1-F1/a.jpg`, 10)).toString()).toBe('abc');
      expect(auth).toBe('Bearer xoxb-1');
      await expect(local.fetch(`${base}/files-pri/T1-F1/a.jpg`, 2)).rejects.toThrow(/too large/);
    } finally {
      server.close();
    }
  });
});

describe('Slack "Edit with StyleCLIP" message shortcut (tiny pack, engine thread)', () => {
  let s: SlackSetup<App>;
  const tmp = mkdtempSync(join(tmpdir(), 'slack-photos-'));
  const encodeLog = join(tmp, 'encoder-calls');
  const encoderCalls = () => (existsSync(encodeLog) ? readFileSync(encodeLog, 'utf8').split('\n').filter(Boolean).length : 0);

  beforeAll(async () => {
    process.env.PHOTO_ENCODE_LOG = encodeLog;
    s = await slackSetup('socket', await makeTestBot({ packDir: tinyPackDir(), engineModule: COUNTING_ENGINE, logger: silentLogger }));
  }, 60_000);
  afterAll(async () => {
    await s?.close();
    delete process.env.PHOTO_ENCODE_LOG;
    rmSync(tmp, { recursive: true, force: true });
  });

  /** Alice posts a file, picks the shortcut on it and, when a modal opens, submits `values`; returns the photo message and the ack of the submission. */
  async function editWithStyleclip(file: { filename: string; mimetype: string; data: Buffer; size?: number; url?: string }, values: Record<string, string>) {
    const { slack } = s;
    const photo = slack.userPostsFile({ user: ALICE, channel: CHANNEL, ...file });
    const viewsBefore = slack.views.length;
    const action = slack.messageAction({ user: ALICE, channel: CHANNEL, ts: photo.ts, callbackId: PHOTO_SHORTCUT });
    await slack.sendEnvelope('interactive', action);
    const hook = String(action.response_url).split('/').pop()!;
    const opened = await slack.waitFor(() => slack.views[viewsBefore] ?? slack.responses.get(hook)?.[0], 'the modal, or a reply');
    if (!('view' in opened)) return { photo, said: String((opened as { text?: string }).text) };
    expect(opened.view).toMatchObject({ type: 'modal', callback_id: PHOTO_MODAL });
    const ack = await slack.sendEnvelope('interactive', slack.viewSubmission({ user: ALICE, viewId: opened.id, values }));
    return { photo, ack };
  }
  const ephemeral = (n: number) => s.slack.waitFor(() => s.slack.ephemerals.length >= n && s.slack.ephemerals[n - 1], 'an ephemeral note');

  it('edits the photo: in its thread, the pasted-back photo beside the aligned before → after; ➕ is stronger without a second inversion', async () => {
    const { slack } = s;
    const astronaut = photoFixture('astronaut.jpg');
    const { photo } = await editWithStyleclip({ filename: 'me.jpg', mimetype: 'image/jpeg', data: astronaut }, { prompt: 'curly hair threshold:0', strength: '3' });
    const shared = await slack.waitFor(() => slack.messages.find((m) => m.user === slack.botUserId && m.files.length && !m.deleted), 'the result', 60_000);
    expect(shared.thread_ts).toBe(photo.ts);
    expect(shared.text).toMatch(/your photo/);
    expect(shared.files).toHaveLength(2);
    const [main, strip] = shared.files.map((id) => slack.files.get(id)!);
    expect(strip.filename).toMatch(/-before-after\.png$/);
    const meta = await sharp(astronaut).metadata();
    const pasted = await sharp(main.bytes!).metadata();
    expect([pasted.width, pasted.height]).toEqual([meta.width, meta.height]);
    expect((await sharp(strip.bytes!).metadata()).width).toBe(512);
    expect(slack.fileDownloads).toBe(1);
    expect(encoderCalls()).toBe(1);
    // files.info came first: the size and type Slack reports.
    expect(slack.callsTo('files.info')[0]?.args.file).toBe(photo.files[0]);

    // ➕ on the job message (the placeholder in the thread, now showing the result).
    const job = slack.messages.find((m) => m.user === slack.botUserId && m.thread_ts === photo.ts && /strength 3/.test(m.text) && !m.files.length)!;
    await s.react(ALICE, 'heavy_plus_sign', job.ts);
    const stronger = await slack.waitFor(() => slack.messages.find((m) => m.files.length === 2 && !m.deleted && strengthIn(m) === 4.5), 'the stronger result', 60_000);
    expect(stronger.text).toMatch(/your photo/);
    expect(encoderCalls()).toBe(1); // the stored W+, no second inversion
    expect(slack.fileDownloads).toBe(1);
  }, 120_000);

  it('a message without an image: said at once, no modal, nothing downloaded', async () => {
    const before = s.slack.fileDownloads;
    const views = s.slack.views.length;
    const r = await editWithStyleclip({ filename: 'notes.txt', mimetype: 'text/plain', data: Buffer.from('hello') }, { prompt: 'curly hair' });
    expect(r.said).toMatch(/not an image/);
    expect(s.slack.views.length).toBe(views);
    expect(s.slack.fileDownloads).toBe(before);
  });

  it('an oversized photo (by the size files.info reports) is refused before any download', async () => {
    const before = s.slack.fileDownloads;
    const n = s.slack.ephemerals.length;
    await editWithStyleclip({ filename: 'huge.jpg', mimetype: 'image/jpeg', data: photoFixture('astronaut.jpg'), size: 25 * 1024 * 1024 }, { prompt: 'curly hair' });
    expect((await ephemeral(n + 1)).text).toMatch(/limit is 10 MB/);
    expect(s.slack.fileDownloads).toBe(before);
  });

  it('a file whose url_private is on another host is never fetched', async () => {
    let hits = 0;
    const elsewhere = createServer((_req, res) => (hits++, res.end('x')));
    elsewhere.listen(0, '127.0.0.1');
    await once(elsewhere, 'listening');
    const n = s.slack.ephemerals.length;
    try {
      const url = `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}/files-pri/T-F/me.jpg`;
      await editWithStyleclip({ filename: 'me.jpg', mimetype: 'image/jpeg', data: photoFixture('astronaut.jpg'), url }, { prompt: 'curly hair' });
      expect((await ephemeral(n + 1)).text).toMatch(/hosted by this platform/);
      expect(hits).toBe(0);
    } finally {
      elsewhere.close();
    }
  });

  it('an empty prompt keeps the modal open with an error', async () => {
    const r = await editWithStyleclip({ filename: 'me.jpg', mimetype: 'image/jpeg', data: photoFixture('astronaut.jpg') }, { prompt: ' ' });
    expect(r.ack).toMatchObject({ response_action: 'errors', errors: { prompt: expect.any(String) } });
  });
});
