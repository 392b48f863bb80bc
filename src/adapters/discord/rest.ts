// Where the bot reaches Discord's REST API, and how its failures are told in one line.
import { DiscordAPIError } from 'discord.js';
import { ConfigError } from '../../config.ts';

/** The Discord REST options: `DISCORD_API_BASE` (without version) points REST, and through `/gateway/bot` the gateway, elsewhere. */
export function restOptions(env: NodeJS.ProcessEnv): { api?: string } {
  const base = env.DISCORD_API_BASE?.trim();
  if (!base) return {};
  if (!/^https?:\/\/[^/]/.test(base)) throw new ConfigError('DISCORD_API_BASE', `expected an http(s) URL without the version, got "${base}"`);
  return { api: base.replace(/\/+$/, '') };
}

/** A one-line description of a REST failure; never the URL (interaction tokens are in webhook URLs). */
export function describeError(err: unknown): string {
  if (err instanceof DiscordAPIError) return `${err.status} ${err.code}: ${err.message.split('\n')[0]}`;
  return err instanceof Error ? err.message.split('\n')[0] : String(err);
}
