// The Discord adapter: slash commands, reactions and result buttons in, job progress and results out.
// It runs no model; everything slow happens after the interaction is deferred.
import { Client, Events, GatewayIntentBits, Partials, type Interaction } from 'discord.js';
import { once } from 'node:events';
import { createLogger, type Logger } from '../../log.ts';
import type { AdapterHandle, BotCore, CommandDefinition } from '../../core/types.ts';
import { onButton } from './buttons.ts';
import { onAutocomplete, onCommand, type DiscordDeps } from './commands.ts';
import { JobMessages } from './job-messages.ts';
import { discordPhotoFetcher } from './photos.ts';
import { registerReactions } from './reactions.ts';
import { describeError, restOptions } from './rest.ts';

const READY_TIMEOUT_MS = 30_000;

export interface DiscordAdapterOptions {
  /** Milliseconds between progress edits of one message (Discord rate limits; default 2000). */
  throttleMs?: number;
  /** Quiet time that collapses a user's rapid reactions on one message into one job (default 750). */
  reactionDebounceMs?: number;
  logger?: Logger;
}

export async function startDiscordAdapter(core: BotCore, env: NodeJS.ProcessEnv, opts: DiscordAdapterOptions = {}): Promise<AdapterHandle> {
  const token = env.DISCORD_TOKEN;
  if (!token) throw new Error('DISCORD_TOKEN is not set: create a bot at https://discord.com/developers/applications (see docs/discord.md)');
  const log = opts.logger ?? createLogger(env.LOG_LEVEL ?? 'info', 'discord');
  const client = new Client({
    // Slash commands need no intent; reactions need these two (neither is privileged).
    intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessageReactions, GatewayIntentBits.DirectMessageReactions],
    // Reactions on messages sent before a restart (uncached) and in DMs arrive only with partials.
    partials: [Partials.Message, Partials.Reaction, Partials.Channel, Partials.User],
    rest: restOptions(env),
  });
  core.setPhotoFetcher?.('discord', discordPhotoFetcher(env));
  const jobs = new JobMessages(core, client.rest, () => client.application!.id, log, opts.throttleMs);
  const deps: DiscordDeps = { core, client, jobs, log };

  const commands = new Map<string, CommandDefinition>(core.commands().map((c) => [c.name, c]));
  const reactions = registerReactions(deps, { debounceMs: opts.reactionDebounceMs });
  client.on(Events.InteractionCreate, (i: Interaction) => {
    const handled = i.isChatInputCommand()
      ? onCommand(deps, commands, i)
      : i.isAutocomplete()
        ? onAutocomplete(deps, i)
        : i.isButton()
          ? onButton(deps, reactions, i)
          : undefined;
    handled?.catch((err) => log.error({ interactionId: i.id }, `discord: interaction failed: ${describeError(err)}`));
  });

  // ── start ──────────────────────────────────────────────────────────────────────────────

  client.on(Events.Error, (err) => log.error(`discord: client error: ${describeError(err)}`));
  client.rest.on('rateLimited', (info) => log.debug({ route: info.route, retryAfter: info.retryAfter }, 'discord: rate limited, waiting'));
  const ready = once(client, Events.ClientReady, { signal: AbortSignal.timeout(READY_TIMEOUT_MS) });
  try {
    await client.login(token);
    await ready;
  } catch (err) {
    await client.destroy();
    throw new Error(`Discord login failed: ${describeError(err)}`);
  }
  const applicationId = client.application!.id;
  if (env.DISCORD_APPLICATION_ID && env.DISCORD_APPLICATION_ID !== applicationId) {
    log.warn(`discord: DISCORD_APPLICATION_ID (${env.DISCORD_APPLICATION_ID}) is not this bot's application (${applicationId})`);
  }
  const unsubscribe = core.onUpdate('discord', (u) => jobs.update(u));
  log.info(`discord: logged in as ${client.user?.tag}`);

  return {
    async close() {
      unsubscribe();
      reactions.stop();
      await jobs.idle();
      jobs.close();
      await client.destroy();
    },
  };
}
