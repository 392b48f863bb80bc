// Registers the slash commands: per guild while developing (instant), globally in production.
import { REST, Routes } from 'discord.js';
import type { CommandDefinition } from '../../core/types.ts';
import { toDiscordCommands } from './command-json.ts';
import { describeError, restOptions } from './rest.ts';

export interface DeployResult { scope: 'guild' | 'global'; names: string[] }

/** A bulk overwrite (PUT): commands no longer defined disappear. Uses DISCORD_GUILD_ID unless `global`. */
export async function deployCommands(defs: CommandDefinition[], env: NodeJS.ProcessEnv, opts: { global?: boolean } = {}): Promise<DeployResult> {
  const { DISCORD_TOKEN: token, DISCORD_APPLICATION_ID: appId, DISCORD_GUILD_ID: guildId } = env;
  if (!token) throw new Error('DISCORD_TOKEN is not set');
  if (!appId) throw new Error('DISCORD_APPLICATION_ID is not set (Developer Portal → General Information → Application ID)');
  const body = toDiscordCommands(defs);
  const rest = new REST(restOptions(env)).setToken(token);
  const global = opts.global || !guildId;
  const route = global ? Routes.applicationCommands(appId) : Routes.applicationGuildCommands(appId, guildId!);
  try {
    const saved = (await rest.put(route, { body })) as { name: string }[];
    return { scope: global ? 'global' : 'guild', names: saved.map((c) => c.name) };
  } catch (err) {
    throw new Error(`registering Discord commands failed: ${describeError(err)}`);
  }
}
