// The Slack adapter (real Bolt app, real bot core with the fake engine) against a fake Slack:
// Socket Mode and HTTP mode, placeholders, uploads, reactions, retries, admin checks, signatures.
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSlackConfig } from '../src/adapters/slack/config.ts';
import { startSlackAdapter } from '../src/adapters/slack/index.ts';
import { silentLogger } from '../src/log.ts';
import { FakeSlack, type FakeMessage } from './fakes/slack/server.ts';
import { COMMANDS } from '../commands/index.ts';
import type { App } from '../src/runtime/app.ts';
import { makeTestBot } from './helpers/core-bot.ts';
import { advertise } from '../src/state/capabilities.ts';
import { ALICE, BOB, CHANNEL, FORM, SECRETS, slackSetup, slackSetupPerTest, strengthIn, type SlackSetup } from './fakes/slack/setup.ts';

const setup = slackSetupPerTest(makeTestBot);

describe('slack adapter, Socket Mode', () => {
  describe('/styleclip curly hair', () => {
    let s: SlackSetup<App>;
    let root: FakeMessage;
    let shared: FakeMessage;
    beforeAll(async () => {
      s = await slackSetup('socket', await makeTestBot());
      await s.command(ALICE, 'curly hair');
      [shared] = await s.results(1);
      root = s.slack.message(CHANNEL, shared.thread_ts!)!;
    });
    afterAll(() => s?.close());

    it('posts a placeholder naming the command, in the channel', () => {
      expect(root.thread_ts).toBeUndefined();
      expect(root.edits[0]).toMatch(/^:hourglass_flowing_sand: <@UALICE01> \/styleclip curly hair/);
    });

    it('edits the placeholder to show the progress', () => {
      expect(root.edits.some((t) => t.startsWith(':art: <@UALICE01> Running *curly hair*'))).toBe(true);
    });

    it('edits the placeholder into the caption when done', () => {
      expect(root.text).toMatch(/^:white_check_mark: <@UALICE01> \*curly hair\*/);
    });

    it('shares the image as a PNG in the placeholder’s thread, with the same caption', () => {
      expect(shared.text).toBe(root.text);
      expect(s.slack.files.get(shared.files[0])!.bytes!.subarray(1, 4).toString()).toBe('PNG');
    });

    it('links both messages to the job, so reactions on either find it', async () => {
      const jobId = await s.core.jobForMessage('slack', `${CHANNEL}:${root.ts}`);
      expect(jobId).toMatch(/^slack-/);
      expect(await s.slack.waitFor(() => s.core.jobForMessage('slack', `${CHANNEL}:${shared.ts}`), 'file link')).toBe(jobId);
    });

    it('costs no users.info call (rate-limited, Tier 4): admin rights matter to admin commands only', () => {
      expect(s.slack.calls.filter((c) => c.method === 'users.info')).toEqual([]);
    });
  });

  describe('➕ on a result from bob, then from alice delivered twice (Slack’s redelivery)', () => {
    let s: SlackSetup<App>;
    let first: FakeMessage;
    let second: FakeMessage;
    let inThread: FakeMessage[];
    beforeAll(async () => {
      s = await slackSetup('socket', await makeTestBot());
      const { slack, core, command, react, results } = s;
      await command(ALICE, 'curly hair');
      [first] = await results(1);
      await slack.waitFor(() => core.jobForMessage('slack', `${CHANNEL}:${first.ts}`), 'file link');
      await react(BOB, 'heavy_plus_sign', first.ts);
      const eventId = await react(ALICE, 'heavy_plus_sign', first.ts);
      await react(ALICE, 'heavy_plus_sign', first.ts, { eventId, retry: 1 });
      [, second] = await results(2);
      await new Promise((r) => setTimeout(r, 300)); // room for a wrongly handled duplicate to show up
      inThread = slack.visibleMessages(CHANNEL).filter((m) => m.thread_ts === first.thread_ts);
    });
    afterAll(() => s?.close());

    it('re-runs stronger for alice, in the thread', () => {
      expect(second.thread_ts).toBe(first.thread_ts);
      expect(strengthIn(second)).toBeGreaterThan(strengthIn(first));
    });

    it('runs once per event_id and ignores bob', () => {
      expect(inThread).toHaveLength(3); // first image, the stronger job's message, its image
    });

    it('deletes nothing', () => {
      expect(s.slack.callsTo('chat.delete')).toHaveLength(0);
    });
  });

  it('➖ on the job message re-runs weaker; ❌ deletes a result', async () => {
    const { slack, command, react, results } = await setup('socket');
    await command(ALICE, 'blue eyes');
    const [first] = await results(1);
    await react(ALICE, 'heavy_minus_sign', first.thread_ts!);
    const [, weaker] = await results(2);
    expect(strengthIn(weaker)).toBeLessThan(strengthIn(first));
    const weakerJobMessage = slack.visibleMessages(CHANNEL).find((m) => m.thread_ts && !m.files.length)!;
    await react(ALICE, 'x', weakerJobMessage.ts);
    await slack.waitFor(() => slack.message(CHANNEL, weaker.ts)!.deleted && slack.message(CHANNEL, weakerJobMessage.ts)!.deleted, 'deleted result');
    expect(slack.message(CHANNEL, first.ts)!.deleted).toBe(false);
  });

  for (const fileDeletion of ['removes-message', 'leaves-tombstone'] as const) {
    it(`❌ on the image message removes the file, the image message and the job message (files.delete ${fileDeletion})`, async () => {
      const { slack, core, command, react, results } = await setup('socket');
      slack.fileDeletion = fileDeletion;
      await command(ALICE, 'curly hair');
      const [image] = await results(1);
      const fileId = image.files[0];
      await slack.waitFor(() => core.jobForMessage('slack', `${CHANNEL}:${image.ts}`), 'file message link');
      await react(ALICE, 'x', image.ts);
      await slack.waitFor(() => slack.ephemerals.find((e) => e.text === 'Deleted.'), 'the private "Deleted."');
      expect(slack.files.has(fileId)).toBe(false);
      expect(slack.visibleMessages(CHANNEL)).toEqual([]); // the caption message with "React ➕ for stronger" too
    });
  }

  it('❌ on the job message after an adapter restart removes the image message and its file too', async () => {
    const { slack, core, command, react, results, restartAdapter } = await setup('socket');
    slack.fileDeletion = 'leaves-tombstone';
    await command(ALICE, 'curly hair');
    const [image] = await results(1);
    await slack.waitFor(() => core.jobForMessage('slack', `${CHANNEL}:${image.ts}`), 'file message link');
    await restartAdapter(); // nothing the adapter kept in memory is left
    await react(ALICE, 'x', image.thread_ts!);
    await slack.waitFor(() => slack.ephemerals.find((e) => e.text === 'Deleted.'), 'the private "Deleted."');
    expect(slack.files.size).toBe(0);
    expect(slack.visibleMessages(CHANNEL)).toEqual([]);
  });

  it('➕ on what is left of a deleted result is refused privately and queues nothing', async () => {
    const { slack, core, command, react, results } = await setup('socket');
    await command(ALICE, 'curly hair');
    const [image] = await results(1);
    await slack.waitFor(() => core.jobForMessage('slack', `${CHANNEL}:${image.ts}`), 'file message link');
    slack.fileDeletion = 'leaves-tombstone';
    slack.failures.set('chat.delete', 'cant_delete_message'); // e.g. a workspace that keeps messages
    await react(ALICE, 'x', image.ts);
    await slack.waitFor(() => slack.ephemerals.find((e) => e.text === 'Deleted.'), 'the private "Deleted."');
    slack.failures.delete('chat.delete');
    const before = slack.messages.length;
    for (const ts of [image.thread_ts!, image.ts]) await react(ALICE, 'heavy_plus_sign', ts);
    await slack.waitFor(() => slack.ephemerals.filter((e) => e.text.includes('This result is gone')).length === 2, 'two refusals');
    expect(slack.ephemerals.every((e) => e.user === ALICE)).toBe(true);
    expect(await core.queue.inFlight()).toHaveLength(0);
    expect(slack.messages.slice(before).every((m) => m.deleted)).toBe(true); // placeholders taken back
    expect(slack.files.size).toBe(0);
  });

  it('after an adapter restart, reactions on earlier results still work, in the same thread', async () => {
    const { slack, core, command, react, results, restartAdapter } = await setup('socket');
    await command(ALICE, 'curly hair');
    const [first] = await results(1);
    await slack.waitFor(() => core.jobForMessage('slack', `${CHANNEL}:${first.ts}`), 'file message link');
    await restartAdapter();
    await react(BOB, 'heavy_plus_sign', first.ts); // still only the requester
    await react(ALICE, 'heavy_plus_sign', first.ts);
    const [, stronger] = await results(2);
    expect(stronger.thread_ts).toBe(first.thread_ts);
    expect(strengthIn(stronger)).toBeGreaterThan(strengthIn(first));
    expect(slack.visibleMessages(CHANNEL).filter((m) => m.thread_ts === first.thread_ts)).toHaveLength(3);
  });

  it('a nudge the core refuses is explained to the requester alone, with no message left behind', async () => {
    const { slack, command, react, results, privateReply } = await setup('socket', { SLACK_ADMIN_USERS: ALICE });
    expect(String((await privateReply(await command(ALICE, 'set strength-max 4.1', '/styleclip-admin'))).text)).toContain('Set strength-max');
    await command(ALICE, 'blue eyes'); // global method, the pack's default strength 4.1: already the most
    const [first] = await results(1);
    await react(ALICE, 'heavy_plus_sign', first.thread_ts!);
    const note = await slack.waitFor(() => slack.ephemerals[0], 'an ephemeral note');
    expect(note).toMatchObject({ user: ALICE, channel: CHANNEL, thread_ts: first.thread_ts });
    expect(note.text).toContain('Strength is already 4.1');
    expect(slack.visibleMessages(CHANNEL).filter((m) => m.thread_ts)).toEqual([first]);
  });

  it('tells the user to invite the bot when it is not in the channel, and queues nothing', async () => {
    const { slack, core, command, privateReply } = await setup('socket');
    slack.addChannel('CRANDOM01', [ALICE]);
    const reply = await privateReply(await command(ALICE, 'curly hair', '/styleclip', 'CRANDOM01'));
    expect(reply).toMatchObject({ response_type: 'ephemeral' });
    expect(String(reply.text)).toContain(`/invite <@${slack.botUserId}>`);
    const dm = await privateReply(await command(ALICE, 'curly hair', '/styleclip', 'DALICEBOB')); // a DM between two people
    expect(String(dm.text)).toContain("I can't post in this conversation");
    expect(await core.queue.inFlight()).toHaveLength(0);
    expect(slack.messages).toHaveLength(0);
  });

  it('tells the user when Slack refuses the placeholder for another reason, and queues nothing', async () => {
    const { slack, core, command, privateReply } = await setup('socket');
    slack.failures.set('chat.postMessage', 'restricted_action'); // e.g. an announcement-only channel
    const reply = await privateReply(await command(ALICE, 'curly hair'));
    expect(reply).toMatchObject({ response_type: 'ephemeral' });
    expect(String(reply.text)).toMatch(/couldn't post in this channel \(restricted_action\)/);
    expect(await core.queue.inFlight()).toHaveLength(0);
  });

  it('a refused prompt answers privately and leaves no placeholder behind', async () => {
    const { slack, command, privateReply } = await setup('socket');
    const reply = await privateReply(await command(ALICE, 'curly hair strength:abc'));
    expect(reply).toMatchObject({ response_type: 'ephemeral' });
    expect(String(reply.text)).toContain('strength must be a number');
    expect(slack.visibleMessages(CHANNEL)).toHaveLength(0);
  });

  it("an admin's train-mapper is posted in the channel, where its job is followed; its refusal is private", async () => {
    const { slack, core, command, privateReply } = await setup('socket', { SLACK_ADMIN_USERS: ALICE });
    const refused = await privateReply(await command(ALICE, 'train-mapper pixie cut', '/styleclip-admin'));
    expect(refused).toMatchObject({ response_type: 'ephemeral' });
    expect(String(refused.text)).toMatch(/^No worker that can train mappers is running now/);
    expect(slack.visibleMessages(CHANNEL)).toHaveLength(0);
    const ad = advertise(core.store, 'train-mapper', { worker: 'w', device: 'cuda', torch: 'test' });
    try {
      await command(ALICE, 'train-mapper pixie cut steps:5', '/styleclip-admin');
      const posted = await slack.waitFor(() => slack.visibleMessages(CHANNEL).find((m) => /Queued mapper training \*pixie cut\* · 5 steps/.test(m.text)), 'the job message');
      expect(await core.jobForMessage('slack', `${CHANNEL}:${posted.ts}`)).toMatch(/^slack-/);
    } finally {
      await ad.stop();
    }
  });

  it('settings: workspace owners and SLACK_ADMIN_USERS may change them, others are refused', async () => {
    const { slack, command, privateReply } = await setup('socket', { SLACK_ADMIN_USERS: 'UCONF001, UOTHER01' });
    slack.addUser({ id: 'UOWNER01', name: 'owner', is_owner: true });
    slack.addUser({ id: 'UADMIN01', name: 'admin', is_admin: true });
    slack.addUser({ id: 'UCONF001', name: 'conf' });
    const admin = async (user: string, text: string) => String((await privateReply(await command(user, text, '/styleclip-admin'))).text);
    expect(await admin(BOB, 'set strength-max 6')).toContain('Only server admins');
    expect(await admin(BOB, 'show')).toContain('strength: -10 to 10');
    expect(await admin('UOWNER01', 'set strength-max 6')).toContain('strength: -10 to 6');
    expect(await admin('UCONF001', 'set strength-min -5')).toContain('strength: -5 to 6');
    expect(await admin('UADMIN01', 'set strength-max 7')).toContain('strength: -5 to 7');
    expect(slack.messages).toHaveLength(0); // nothing public
  });
});

describe('slack configuration', () => {
  it('picks Socket Mode when an app token is set, HTTP mode otherwise', () => {
    expect(readSlackConfig({ SLACK_BOT_TOKEN: 'xoxb-1', SLACK_APP_TOKEN: 'xapp-1', SLACK_SIGNING_SECRET: 's' }).mode).toBe('socket');
    const http = readSlackConfig({ SLACK_BOT_TOKEN: 'xoxb-1', SLACK_SIGNING_SECRET: 's', SLACK_ADMIN_USERS: ' U1, U2 ,', SLACK_API_URL: 'http://127.0.0.1:9/api' });
    expect(http).toMatchObject({ mode: 'http', port: 3001, host: '127.0.0.1', apiUrl: 'http://127.0.0.1:9/api/' });
    expect(readSlackConfig({ SLACK_BOT_TOKEN: 'xoxb-1', SLACK_SIGNING_SECRET: 's', HOST: '0.0.0.0' }).host).toBe('0.0.0.0');
    expect([...http.adminUsers]).toEqual(['U1', 'U2']);
  });

  it('names the variable that is missing or wrong', () => {
    expect(() => readSlackConfig({ SLACK_APP_TOKEN: 'xapp-1' })).toThrow(/^SLACK_BOT_TOKEN: is not set/);
    expect(() => readSlackConfig({ SLACK_BOT_TOKEN: 'xoxb-1' })).toThrow(/^SLACK_APP_TOKEN: set it for Socket Mode, or set SLACK_SIGNING_SECRET/);
    expect(() => readSlackConfig({ SLACK_BOT_TOKEN: 'xoxb-1', SLACK_SIGNING_SECRET: 's', SLACK_PORT: 'abc' })).toThrow(/^SLACK_PORT: /);
  });

  it('fails to start with Slack\'s reason when a token is rejected', async () => {
    const slack = await new FakeSlack(SECRETS).listen();
    const core = { onUpdate: () => () => {}, commands: () => [] } as unknown as App;
    const start = (botToken: string, appToken: string) =>
      startSlackAdapter(core, { SLACK_BOT_TOKEN: botToken, SLACK_APP_TOKEN: appToken, SLACK_API_URL: slack.apiUrl }, { logger: silentLogger });
    try {
      await expect(start('xoxb-wrong', SECRETS.appToken)).rejects.toThrow(/^Slack rejected SLACK_BOT_TOKEN \(invalid_auth\)$/);
      await expect(start(SECRETS.botToken, 'xapp-wrong')).rejects.toThrow(/^Slack rejected SLACK_APP_TOKEN \(invalid_auth\)$/);
    } finally {
      await slack.close();
    }
  });
});

describe('deploy/slack-manifest.yml', () => {
  it('declares every core command, the reaction event and the scopes the adapter needs', () => {
    const manifest = readFileSync('deploy/slack-manifest.yml', 'utf8');
    const declared = [...manifest.matchAll(/^\s*- command: \/(\S+)/gm)].map((m) => m[1]);
    expect(declared.sort()).toEqual(COMMANDS.map((c) => c.definition.name).sort());
    expect(manifest).toMatch(/bot_events:\s*\n\s*- reaction_added/);
    expect(manifest).toMatch(/interactivity:\s*\n\s*is_enabled: true\b/); // the buttons under each result
    for (const scope of ['commands', 'chat:write', 'files:write', 'files:read', 'reactions:read', 'users:read']) {
      expect(manifest).toMatch(new RegExp(`^\\s*- ${scope}\\b`, 'm'));
    }
  });
});

describe('slack adapter, logs', () => {
  it('never contain tokens or secrets, even at debug level', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const s = await setup('socket', {}, logger);
    await s.command(ALICE, 'curly hair');
    await s.results(1);
    const text = lines.join('');
    expect(text).toContain('slack adapter started');
    for (const secret of [...Object.values(SECRETS), 'legacy-verification-token']) expect(text).not.toContain(secret);
  });
});

describe('slack adapter, HTTP mode', () => {
  it('forged or stale requests get 401 and queue nothing; signed ones work', async () => {
    const { slack, core, eventsUrl, command, results } = await setup('http');
    const body = new URLSearchParams(slack.slashCommand({ command: '/styleclip', text: 'curly hair', user: ALICE, channel: CHANNEL })).toString();
    expect((await slack.sendSigned(eventsUrl, body, FORM, { secret: 'not-the-secret' })).status).toBe(401);
    expect((await slack.sendSigned(eventsUrl, body, FORM, { timestamp: Math.floor(Date.now() / 1000) - 6 * 60 })).status).toBe(401);
    const unsigned = await fetch(eventsUrl, { method: 'POST', headers: { 'content-type': FORM }, body });
    expect(unsigned.status).toBe(401);
    expect(await core.queue.inFlight()).toHaveLength(0);
    expect(slack.messages).toHaveLength(0);

    await command(ALICE, 'curly hair');
    await results(1);
  });

  it('listens only where HOST says: with HOST=127.0.0.1, another loopback address (127.0.0.2) is refused', async () => {
    const { slack, eventsUrl, command, results } = await setup('http', { HOST: '127.0.0.1' });
    const elsewhere = eventsUrl.replace('127.0.0.1', '127.0.0.2'); // Linux routes all of 127/8 to lo
    const body = new URLSearchParams(slack.slashCommand({ command: '/styleclip', text: 'curly hair', user: ALICE, channel: CHANNEL })).toString();
    const error = await slack.sendSigned(elsewhere, body, FORM).then(() => null, (err: Error) => err);
    expect((error?.cause as { code?: string } | undefined)?.code).toBe('ECONNREFUSED');
    await command(ALICE, 'curly hair'); // the address HOST names works
    await results(1);
  });

  it('a retried reaction event (x-slack-retry-num) makes no second job', async () => {
    const { slack, command, react, results } = await setup('http');
    await command(ALICE, 'curly hair');
    const [first] = await results(1);
    const eventId = await react(ALICE, 'heavy_plus_sign', first.thread_ts!);
    await react(ALICE, 'heavy_plus_sign', first.thread_ts!, { eventId, retry: 1 });
    await results(2);
    await new Promise((r) => setTimeout(r, 300)); // room for a wrongly handled duplicate to show up
    expect(slack.visibleMessages(CHANNEL).filter((m) => m.thread_ts)).toHaveLength(3);
  });
});
