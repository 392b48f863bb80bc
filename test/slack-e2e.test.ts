// Acceptance: the real Bolt app, the real bot core and engine on the tiny pack (models/packs/tiny), and a fake Slack.
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../src/runtime/app.ts';
import { silentLogger } from '../src/log.ts';
import { testAppOptions } from './helpers/core-bot.ts';
import { ALICE, BOB, CHANNEL, FORM, slackSetup, strengthIn, type SlackSetup } from './fakes/slack/setup.ts';

const TINY = path.resolve('models/packs/tiny');
const tinyBot = () => createApp(testAppOptions({ packDir: TINY, logger: silentLogger, batchWindowMs: 2 }));

describe('Slack end to end on the tiny pack (Socket Mode)', () => {
  let s: SlackSetup<App>;
  beforeAll(async () => {
    s = await slackSetup('socket', await tinyBot());
  });
  afterAll(() => s?.close());

  it('/styleclip curly hair → placeholder → image in the thread; ➕ by the requester → a stronger edit, once', async () => {
    const { slack, core, command, react, results } = s;
    await command(ALICE, 'curly hair');
    const [first] = await results(1, 60_000);
    const root = slack.message(CHANNEL, first.thread_ts!)!;
    expect(root.edits[0]).toContain('/styleclip curly hair');
    expect(root.text).toContain('*curly hair*');
    const image = slack.files.get(first.files[0])!.bytes!;
    const meta = await sharp(image).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 64, 64]);

    await slack.waitFor(() => core.jobForMessage('slack', `${CHANNEL}:${first.ts}`), 'file message link');
    await react(BOB, 'heavy_plus_sign', first.ts); // not the requester: ignored
    const eventId = await react(ALICE, 'heavy_plus_sign', first.ts);
    await react(ALICE, 'heavy_plus_sign', first.ts, { eventId, retry: 1 }); // Slack's retry of the same event
    const [, stronger] = await results(2, 60_000);
    expect(stronger.thread_ts).toBe(root.ts);
    expect(strengthIn(stronger)).toBeGreaterThan(strengthIn(first));
    expect(slack.files.get(stronger.files[0])!.bytes!.equals(image)).toBe(false);
    await new Promise((r) => setTimeout(r, 300)); // room for a wrongly handled duplicate to show up
    expect(slack.visibleMessages(CHANNEL).filter((m) => m.thread_ts === root.ts)).toHaveLength(3);
    expect(await core.queue.inFlight()).toHaveLength(0);
  });

  it("refuses a non-admin's settings change", async () => {
    const { command, privateReply } = s;
    const reply = await privateReply(await command(BOB, 'set strength-max 2', '/styleclip-admin'));
    expect(reply).toMatchObject({ response_type: 'ephemeral' });
    expect(String(reply.text)).toContain('Only server admins');
    expect(String((await privateReply(await command(BOB, 'show', '/styleclip-admin'))).text)).toContain('strength: -10 to 10');
  });
});

describe('Slack end to end on the tiny pack (HTTP mode)', () => {
  it('a forged or stale request gets 401 and queues nothing', async () => {
    const s = await slackSetup('http', await tinyBot());
    try {
      const { slack, core, eventsUrl } = s;
      const body = new URLSearchParams(slack.slashCommand({ command: '/styleclip', text: 'curly hair', user: ALICE, channel: CHANNEL })).toString();
      expect((await slack.sendSigned(eventsUrl, body, FORM, { secret: 'forged' })).status).toBe(401);
      expect((await slack.sendSigned(eventsUrl, body, FORM, { timestamp: Math.floor(Date.now() / 1000) - 301 })).status).toBe(401);
      expect(slack.messages).toHaveLength(0);
      expect(await core.queue.inFlight()).toHaveLength(0);
      await s.command(ALICE, 'curly hair'); // the same request, properly signed, goes through
      await s.results(1, 60_000);
    } finally {
      await s.close();
    }
  });
});
