// Slack settings from the environment. Socket Mode when SLACK_APP_TOKEN is set (no public URL needed),
// else HTTP mode on HOST:SLACK_PORT with request signatures checked against SLACK_SIGNING_SECRET.
import { ConfigError } from '../../config.ts';

export interface SlackConfig {
  botToken: string;
  mode: 'socket' | 'http';
  appToken?: string;
  signingSecret?: string;
  /** Web API base (also used by Socket Mode's apps.connections.open); Slack's own when unset. */
  apiUrl?: string;
  /** User ids allowed to run admin commands besides workspace admins and owners. */
  adminUsers: Set<string>;
  /** HTTP mode only; 0 picks a free port. */
  port: number;
  /** HTTP mode only: the address to listen on (HOST, as for the playground; 127.0.0.1 unless set). */
  host: string;
}

function value(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const raw = env[name]?.trim();
  return raw ? raw : undefined;
}

export function readSlackConfig(env: NodeJS.ProcessEnv): SlackConfig {
  const botToken = value(env, 'SLACK_BOT_TOKEN');
  if (!botToken) throw new ConfigError('SLACK_BOT_TOKEN', 'is not set (the xoxb- token from OAuth & Permissions)');
  const appToken = value(env, 'SLACK_APP_TOKEN');
  const signingSecret = value(env, 'SLACK_SIGNING_SECRET');
  if (!appToken && !signingSecret) {
    throw new ConfigError('SLACK_APP_TOKEN', 'set it for Socket Mode, or set SLACK_SIGNING_SECRET for HTTP mode');
  }
  const apiUrl = value(env, 'SLACK_API_URL');
  if (apiUrl && !/^https?:\/\//.test(apiUrl)) throw new ConfigError('SLACK_API_URL', `expected an http(s) URL, got "${apiUrl}"`);
  const rawPort = value(env, 'SLACK_PORT') ?? '3001';
  const port = Number(rawPort);
  if (!/^\d+$/.test(rawPort) || port > 65535) throw new ConfigError('SLACK_PORT', `expected a port number, got "${rawPort}"`);
  return {
    botToken,
    mode: appToken ? 'socket' : 'http',
    appToken,
    signingSecret,
    apiUrl: apiUrl && !apiUrl.endsWith('/') ? `${apiUrl}/` : apiUrl,
    adminUsers: new Set((value(env, 'SLACK_ADMIN_USERS') ?? '').split(',').map((s) => s.trim()).filter(Boolean)),
    port,
    host: value(env, 'HOST') ?? '127.0.0.1',
  };
}
