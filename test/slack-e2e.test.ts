// Acceptance: the real Bolt app, the real bot core and engine on the tiny pack (models/packs/tiny), and a fake Slack.
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../src/runtime/app.ts';
import { silentLogger } from '../src/log.ts';
import { testAppOptions } from './helpers/core-bot.ts';
import { ALICE, BOB, CHANNEL, FORM, slackSetup, strengthIn, type SlackSetup } from './fakes/slack/setup.ts';
import type { FakeMessage } from './fakes/slack/server.ts';

const TINY = path.resolve('models/packs/tiny');
const tinyBot = () => createApp(testAppOptions({ packDir: TINY, logger: silentLogger, batchWindowMs: 2 }));

describe('Slack end to end on the tiny pack (Socket Mode)', () => {
  let s: SlackSetup<App>;
  beforeAll(async () => {
    s = await slackSetup('socket', await tinyBot());
  });
  afterAll(() => s?.close());

  describe('/styleclip curly hair from alice', () => {
    let first: FakeMessage;
    let root: FakeMessage;
    let image: Buffer;
    beforeAll(async () => {
      await s.command(ALICE, 'curly hair');
      [first] = await s.results(1, 60_000);
      root = s.slack.message(CHANNEL, first.thread_ts!)!;
      image = s.slack.files.get(first.files[0])!.bytes!;
    });

    it('posts a placeholder naming the command, then edits it into the caption', () => {
      expect(root.edits[0]).toContain('/styleclip curly hair');
      expect(root.text).toContain('*curly hair*');
    });

    it('shares the image in the thread as a 64×64 PNG', async () => {
      const meta = await sharp(image).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(['png', 64, 64]);
    });

    describe('then ➕ from bob, and from alice delivered twice (Slack’s retry)', () => {
      let stronger: FakeMessage;
      let inThread: FakeMessage[];
      beforeAll(async () => {
        const { slack, core, react, results } = s;
        await slack.waitFor(() => core.jobForMessage('slack', `${CHANNEL}:${first.ts}`), 'file message link');
        await react(BOB, 'heavy_plus_sign', first.ts);
        const eventId = await react(ALICE, 'heavy_plus_sign', first.ts);
        await react(ALICE, 'heavy_plus_sign', first.ts, { eventId, retry: 1 });
        [, stronger] = await results(2, 60_000);
        await new Promise((r) => setTimeout(r, 300)); // room for a wrongly handled duplicate to show up
        inThread = slack.visibleMessages(CHANNEL).filter((m) => m.thread_ts === root.ts);
      });

      it('gives alice a stronger edit in the same thread', () => {
        expect(stronger.thread_ts).toBe(root.ts);
        expect(strengthIn(stronger)).toBeGreaterThan(strengthIn(first));
        expect(s.slack.files.get(stronger.files[0])!.bytes!.equals(image)).toBe(false);
      });

      it('makes one edit only: bob is ignored, the retry is recognised', () => {
        expect(inThread).toHaveLength(3);
      });

      it('leaves nothing in the queue', async () => {
        expect(await s.core.queue.inFlight()).toHaveLength(0);
      });
    });
  });

  it("refuses a non-admin's settings change, privately", async () => {
    const reply = await s.privateReply(await s.command(BOB, 'set strength-max 2', '/styleclip-admin'));
    expect(reply).toMatchObject({ response_type: 'ephemeral' });
    expect(String(reply.text)).toContain('Only server admins');
  });

  it("a non-admin's settings change changes nothing", async () => {
    await s.privateReply(await s.command(BOB, 'set strength-max 2', '/styleclip-admin'));
    expect(String((await s.privateReply(await s.command(BOB, 'show', '/styleclip-admin'))).text)).toContain('strength: -10 to 10');
  });
});

describe('Slack end to end on the tiny pack (HTTP mode): a request', () => {
  let s: SlackSetup<App>;
  let forged: number;
  let stale: number;
  let posted: number;
  let queued: number;
  beforeAll(async () => {
    s = await slackSetup('http', await tinyBot());
    const { slack, core, eventsUrl } = s;
    const body = new URLSearchParams(slack.slashCommand({ command: '/styleclip', text: 'curly hair', user: ALICE, channel: CHANNEL })).toString();
    forged = (await slack.sendSigned(eventsUrl, body, FORM, { secret: 'forged' })).status;
    stale = (await slack.sendSigned(eventsUrl, body, FORM, { timestamp: Math.floor(Date.now() / 1000) - 301 })).status;
    posted = slack.messages.length;
    queued = (await core.queue.inFlight()).length;
  });
  afterAll(() => s?.close());

  it('with a forged signature gets 401', () => {
    expect(forged).toBe(401);
  });

  it('signed over 5 minutes ago gets 401', () => {
    expect(stale).toBe(401);
  });

  it('refused posts and queues nothing', () => {
    expect(posted).toBe(0);
    expect(queued).toBe(0);
  });

  it('properly signed goes through', async () => {
    await s.command(ALICE, 'curly hair');
    await s.results(1, 60_000);
  });
});
