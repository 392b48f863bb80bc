// The Slack adapter: Bolt for JavaScript over the bot core's commands and job updates.
// Socket Mode when SLACK_APP_TOKEN is set (the self-hosting default: no public URL), else HTTP mode on
// HOST:SLACK_PORT, where Bolt checks each request's signature and 5-minute timestamp window (401 otherwise).
import type { AddressInfo } from 'node:net';
import { App, LogLevel, SocketModeReceiver, type Logger as BoltLogger } from '@slack/bolt';
import type { AdapterHandle, BotCore } from '../../core/types.ts';
import { createLogger, type Logger } from '../../log.ts';
import { SlackAdmins } from './admins.ts';
import { registerButtons } from './buttons.ts';
import { registerCommands } from './commands.ts';
import { registerPhotoShortcut, slackPhotoFetcher } from './photos.ts';
import { readSlackConfig } from './config.ts';
import { JobMessages } from './job-messages.ts';
import { errorCode } from './messages.ts';
import { registerReactions } from './reactions.ts';

export interface SlackAdapterHandle extends AdapterHandle {
  mode: 'socket' | 'http';
  /** HTTP mode: the port serving /slack/events. */
  port?: number;
}

export async function startSlackAdapter(
  core: BotCore,
  env: NodeJS.ProcessEnv,
  options: { logger?: Logger } = {},
): Promise<SlackAdapterHandle> {
  const config = readSlackConfig(env);
  const log = options.logger ?? createLogger(env.LOG_LEVEL ?? 'info', 'slack');
  const logger = boltLogger(log);
  // slackApiUrl reaches the Web API client and, through installerOptions, Socket Mode's apps.connections.open.
  const clientOptions = config.apiUrl ? { slackApiUrl: config.apiUrl } : {};
  const receiver =
    config.mode === 'socket'
      ? new SocketModeReceiver({ appToken: config.appToken as string, logger, installerOptions: { clientOptions: { ...clientOptions } } })
      : undefined;
  const app = new App({
    token: config.botToken,
    receiver,
    signingSecret: config.signingSecret,
    clientOptions,
    logger,
    deferInitialization: true,
  });
  const where = config.apiUrl ?? 'https://slack.com/api/';
  log.info({ mode: config.mode, api: where }, 'connecting to Slack');
  try {
    await app.init(); // auth.test: a bad token fails here, with Slack's reason
  } catch (err) {
    throw new Error(slackSaid(err) ? `Slack rejected SLACK_BOT_TOKEN (${errorCode(err)})` : `Can't reach Slack at ${where}: ${errorCode(err)}`);
  }

  const jobs = new JobMessages(core, app.client, log);
  const deps = { core, client: app.client, admins: new SlackAdmins(config.adminUsers, app.client, log), jobs, log };
  registerCommands(app, deps);
  registerReactions(app, deps);
  registerButtons(app, deps);
  registerPhotoShortcut(app, deps);
  core.setPhotoFetcher?.('slack', slackPhotoFetcher(config.botToken, config.apiUrl));
  app.error(async (err) => {
    log.error({ err: errorCode(err) }, 'slack listener failed');
  });
  const unsubscribe = core.onUpdate('slack', (update) => jobs.deliver(update));

  let port: number | undefined;
  try {
    if (receiver) {
      await app.start();
    } else {
      // Bound where HOST says (loopback by default), so a reverse proxy can be the only way in.
      const server = await app.start({ port: config.port, host: config.host });
      port = (server.address() as AddressInfo).port;
    }
  } catch (err) {
    unsubscribe();
    if (receiver && slackSaid(err)) throw new Error(`Slack rejected SLACK_APP_TOKEN (${errorCode(err)})`);
    throw new Error(`${receiver ? 'Socket Mode connection' : `HTTP server on HOST=${config.host} SLACK_PORT=${config.port}`} failed: ${errorCode(err)}`);
  }
  log.info({ mode: config.mode, ...(port === undefined ? {} : { host: config.host, port }) }, 'slack adapter started');
  return {
    mode: config.mode,
    port,
    async close() {
      unsubscribe();
      await jobs.idle(); // let a result that is being uploaded arrive
      if (receiver) await receiver.client.disconnect();
      else await app.stop();
    },
  };
}

/** Whether Slack answered with an error (ok: false), as opposed to not answering. */
function slackSaid(err: unknown): boolean {
  return typeof (err as { data?: { error?: unknown } }).data?.error === 'string';
}

/** Bolt's logger interface over pino, with anything token-like masked (Socket Mode debug logs echo payloads). */
function boltLogger(log: Logger): BoltLogger {
  const text = (parts: unknown[]) =>
    parts
      .map((p) => (p instanceof Error ? p.message : typeof p === 'string' ? p : JSON.stringify(p)))
      .join(' ')
      .replace(/(xox[a-z]|xapp)-[\w-]+/g, '$1-[redacted]')
      .replace(/("token"\s*:\s*")[^"]*"/g, '$1[redacted]"');
  const level = (): LogLevel =>
    log.isLevelEnabled('debug') ? LogLevel.DEBUG : log.isLevelEnabled('info') ? LogLevel.INFO : log.isLevelEnabled('warn') ? LogLevel.WARN : LogLevel.ERROR;
  return {
    debug: (...parts) => log.debug(text(parts)),
    info: (...parts) => log.info(text(parts)),
    warn: (...parts) => log.warn(text(parts)),
    error: (...parts) => log.error(text(parts)),
    setLevel: () => {},
    getLevel: level,
    setName: () => {},
  };
}
