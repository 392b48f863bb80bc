// A fake Slack, a bot core and the Slack adapter between them, in Socket Mode or HTTP mode, with helpers that
// act like Slack users (slash commands, reactions, button presses) and wait for what the bot posts.
import { afterEach, expect } from 'vitest';
import { startSlackAdapter } from '../../../src/adapters/slack/index.ts';
import type { BotCore } from '../../../src/core/types.ts';
import { silentLogger, type Logger } from '../../../src/log.ts';
import { FakeSlack, type FakeMessage } from './server.ts';

export const SECRETS = { botToken: 'xoxb-test-bot', appToken: 'xapp-test-app', signingSecret: 'test-signing-secret' };
export const ALICE = 'UALICE01';
export const BOB = 'UBOB0001';
export const CHANNEL = 'CGENERAL1';
export const FORM = 'application/x-www-form-urlencoded' as const;

type ClosableCore = BotCore & { close(): Promise<void> };
export type SlackSetup<C extends ClosableCore = ClosableCore> = Awaited<ReturnType<typeof slackSetup<C>>>;

/** Starts a fake Slack and the adapter over `core`; `close()` stops all three (the core too). */
export async function slackSetup<C extends ClosableCore>(
  mode: 'socket' | 'http',
  core: C,
  env: Record<string, string> = {},
  logger: Logger = silentLogger,
) {
  const slack = await new FakeSlack(SECRETS).listen();
  slack.addUser({ id: ALICE, name: 'alice' });
  slack.addUser({ id: BOB, name: 'bob' });
  slack.addChannel(CHANNEL, [ALICE, BOB, slack.botUserId]);
  const start = () =>
    startSlackAdapter(
      core,
      {
        SLACK_BOT_TOKEN: SECRETS.botToken,
        SLACK_API_URL: slack.apiUrl,
        ...(mode === 'socket' ? { SLACK_APP_TOKEN: SECRETS.appToken } : { SLACK_SIGNING_SECRET: SECRETS.signingSecret, SLACK_PORT: '0' }),
        ...env,
      },
      { logger },
    );
  let adapter = await start().catch(async (err: unknown) => {
    await Promise.all([slack.close(), core.close()]);
    throw err;
  });
  /** HTTP mode: where the adapter takes Slack's requests. */
  let eventsUrl = `http://127.0.0.1:${adapter.port}/slack/events`;
  /** A new adapter process over the same core and Slack: whatever the adapter kept in memory is gone. */
  const restartAdapter = async () => {
    await adapter.close();
    adapter = await start();
    eventsUrl = `http://127.0.0.1:${adapter.port}/slack/events`;
  };

  /** Runs a slash command the way this mode delivers it; returns its response_url hook id. */
  const command = async (user: string, text: string, name = '/styleclip', channel = CHANNEL) => {
    const payload = slack.slashCommand({ command: name, text, user, channel });
    if (mode === 'socket') await slack.sendEnvelope('slash_commands', payload);
    else expect((await slack.sendSigned(eventsUrl, new URLSearchParams(payload).toString(), FORM)).status).toBe(200);
    return payload.response_url.split('/').pop() as string;
  };
  /** A reaction_added event; pass the same eventId and a retry number to imitate Slack's redelivery. */
  const react = async (user: string, reaction: string, ts: string, opts: { eventId?: string; retry?: number } = {}) => {
    const body = slack.eventCallback(slack.reactionAdded({ user, reaction, channel: CHANNEL, ts }), opts.eventId);
    if (mode === 'socket') await slack.sendEnvelope('events_api', body, { retryAttempt: opts.retry });
    else expect((await slack.sendSigned(eventsUrl, JSON.stringify(body), 'application/json', { retryNum: opts.retry })).status).toBe(200);
    return body.event_id as string;
  };
  /**
   * A user presses the button `emoji` on a message (a block_actions request, delivered as this mode does);
   * `times` > 1 delivers the very same request again (a retry). Returns the action_id pressed.
   */
  const press = async (user: string, ts: string, emoji: string, times = 1) => {
    const actionId = slack.buttonId(CHANNEL, ts, emoji);
    if (!actionId) throw new Error(`no ${emoji} button on ${ts}`);
    const payload = slack.blockActions({ user, channel: CHANNEL, ts, actionId });
    for (let i = 0; i < times; i++) {
      if (mode === 'socket') await slack.sendEnvelope('interactive', payload);
      else expect((await slack.sendSigned(eventsUrl, new URLSearchParams({ payload: JSON.stringify(payload) }).toString(), FORM)).status).toBe(200);
    }
    return actionId;
  };
  /** The private reply to a command (posted to its response_url). */
  const privateReply = (hook: string) => slack.waitFor(() => slack.responses.get(hook)?.[0], 'a reply on response_url');
  /** Waits until `n` result images are shared, and returns their messages in order. */
  const results = (n: number, timeoutMs?: number) =>
    slack.waitFor(
      () => {
        const shared = slack.messages.filter((m) => m.files.length && !m.deleted);
        return shared.length >= n && shared;
      },
      `${n} result image(s)`,
      timeoutMs,
    );
  const close = async () => {
    await adapter.close();
    await core.close();
    await slack.close();
  };
  return {
    slack,
    core,
    get eventsUrl() {
      return eventsUrl;
    },
    command,
    react,
    press,
    privateReply,
    results,
    restartAdapter,
    close,
  };
}

/** The strength a result's caption states. */
export const strengthIn = (m: FakeMessage): number => Number(/strength (-?[\d.]+)/.exec(m.text)?.[1]);

/**
 * For a test file: `setup(mode, env)` starts a fake Slack and the adapter over a fresh core from `makeCore`;
 * whatever a test started is closed after it.
 */
export function slackSetupPerTest<C extends ClosableCore>(makeCore: () => Promise<C>) {
  let open: SlackSetup<C>[] = [];
  afterEach(async () => {
    for (const s of open) await s.close();
    open = [];
  });
  return async (mode: 'socket' | 'http', env: Record<string, string> = {}, logger?: Logger): Promise<SlackSetup<C>> => {
    const s = await slackSetup(mode, await makeCore(), env, logger);
    open.push(s);
    return s;
  };
}
