// The Discord adapter: slash commands and reactions in, job progress and results out.
// It runs no model; everything slow happens after the interaction is deferred.
import {
  ApplicationCommandOptionType,
  Client,
  Events,
  GatewayIntentBits,
  MessageFlags,
  Partials,
  PermissionFlagsBits,
  type AutocompleteInteraction,
  type ChatInputCommandInteraction,
  type Interaction,
} from 'discord.js';
import { once } from 'node:events';
import { ConfigError } from '../../config.ts';
import { createLogger, type Logger } from '../../log.ts';
import type { AdapterHandle, BotCore, CommandDefinition, InvocationContext, Nudge, ReplyTarget } from '../../core/types.ts';
import { toCommandInput } from './commands.ts';
import { Deliveries, REACTIONS, clip, describeError, redEmbed } from './delivery.ts';

interface RawReaction { message_id: string; channel_id: string; user_id: string; emoji?: { name: string | null }; member?: { user?: { bot?: boolean } } }

const NUDGES = new Map<string, Nudge>(Object.entries(REACTIONS).map(([nudge, emoji]) => [emoji, nudge as Nudge]));
/** Autocomplete must answer within Discord's 3 s too; an empty list beats a failed interaction. */
const AUTOCOMPLETE_TIMEOUT_MS = 2000;
const READY_TIMEOUT_MS = 30_000;

export interface DiscordAdapterOptions {
  /** Milliseconds between progress edits of one message (Discord rate limits; default 2000). */
  throttleMs?: number;
  /** Quiet time that collapses a user's rapid reactions on one message into one job (default 750). */
  reactionDebounceMs?: number;
  logger?: Logger;
}

/** The Discord REST options: `DISCORD_API_BASE` (without version) points REST, and through `/gateway/bot` the gateway, elsewhere. */
export function restOptions(env: NodeJS.ProcessEnv): { api?: string } {
  const base = env.DISCORD_API_BASE?.trim();
  if (!base) return {};
  if (!/^https?:\/\/[^/]/.test(base)) throw new ConfigError('DISCORD_API_BASE', `expected an http(s) URL without the version, got "${base}"`);
  return { api: base.replace(/\/+$/, '') };
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
  const commands = new Map<string, CommandDefinition>(core.commands().map((c) => [c.name, c]));
  const deliveries = new Deliveries(core, client.rest, () => client.application!.id, log, opts.throttleMs);
  const reactions = new ReactionQueue(opts.reactionDebounceMs ?? 750);

  // ── slash commands ─────────────────────────────────────────────────────────────────────

  function context(i: ChatInputCommandInteraction | AutocompleteInteraction): InvocationContext {
    return {
      platform: 'discord',
      serverId: i.guildId,
      channelId: i.channelId ?? i.user.id,
      user: { id: i.user.id, name: i.user.globalName ?? i.user.username },
      // Manage Server in this channel (Discord sends no member, hence no admin, in DMs).
      isPlatformAdmin: i.memberPermissions?.has(PermissionFlagsBits.ManageGuild) ?? false,
      requestId: i.id,
    };
  }

  /** A reply only the invoker sees: refusals and errors as a red embed, private text plainly. */
  async function replyPrivately(i: ChatInputCommandInteraction, ephemeral: boolean, text: string, error: boolean): Promise<void> {
    const body = error ? { content: '', embeds: [redEmbed('Sorry', text)] } : { content: clip(text), embeds: [] };
    if (ephemeral) {
      await i.editReply(body);
    } else {
      // The deferral was public (and Discord can't make it private): swap it for an ephemeral followup.
      await i.deleteReply();
      await i.followUp({ ...body, flags: MessageFlags.Ephemeral });
    }
  }

  async function onCommand(i: ChatInputCommandInteraction): Promise<void> {
    const def = commands.get(i.commandName);
    const ephemeral = def ? Boolean(def.adminOnly || def.privateReply) : true;
    // First thing, before any call that could wait on the queue or Redis: Discord's 3 s window.
    await i.deferReply(ephemeral ? { flags: MessageFlags.Ephemeral } : {});
    try {
      if (!def) return await replyPrivately(i, true, `Unknown command /${i.commandName}: the bot's commands need re-registering.`, true);
      const message = await i.fetchReply();
      const channelId = i.channelId ?? message.channelId;
      const target: ReplyTarget = { platform: 'discord', channelId, messageId: message.id, ...(i.channel?.isThread() ? { threadId: channelId } : {}) };
      deliveries.register({ channelId, messageId: message.id, token: i.token, createdAt: i.createdTimestamp, sizeLimit: i.attachmentSizeLimit, ephemeral });
      const reply = await core.invoke(def.name, toCommandInput(i.options.data), context(i), target);
      if (reply.error || (reply.ephemeral && !ephemeral)) return await replyPrivately(i, ephemeral, reply.text, Boolean(reply.error));
      if (!reply.job) return await deliveries.showText(message.id, reply.text);
      await link(message.id, reply.job.id);
      await deliveries.setJob(message.id, reply.job.id, reply.text);
    } catch (err) {
      log.error({ command: i.commandName, interactionId: i.id }, `discord: /${i.commandName} failed: ${describeError(err)}`);
      await replyPrivately(i, ephemeral, 'Something went wrong on our side. Please try again in a moment.', true);
    }
  }

  /** Lets reactions on the message find the job. The job is queued either way, so a failure here only costs the reactions. */
  async function link(messageId: string, jobId: string): Promise<void> {
    try {
      await core.linkMessage('discord', messageId, jobId);
    } catch (err) {
      log.warn({ jobId }, `discord: reactions on message ${messageId} won't work: ${describeError(err)}`);
    }
  }

  async function onAutocomplete(i: AutocompleteInteraction): Promise<void> {
    const focused = i.options.getFocused(true);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string[]>((resolve) => { timer = setTimeout(() => resolve([]), AUTOCOMPLETE_TIMEOUT_MS); });
    const found = await Promise.race([core.autocomplete(i.commandName, focused.name, String(focused.value), context(i)).catch(() => []), timeout]);
    clearTimeout(timer);
    // A choice's value has the option's type: numbers for number/integer options.
    const numeric = focused.type !== ApplicationCommandOptionType.String;
    const choices = found.map((s) => ({ name: s.slice(0, 100), value: numeric ? Number(s) : s.slice(0, 100) }));
    await i.respond(choices.filter((c) => !Number.isNaN(c.value)).slice(0, 25));
  }

  client.on(Events.InteractionCreate, (i: Interaction) => {
    const handled = i.isChatInputCommand() ? onCommand(i) : i.isAutocomplete() ? onAutocomplete(i) : undefined;
    handled?.catch((err) => log.error({ interactionId: i.id }, `discord: interaction failed: ${describeError(err)}`));
  });

  // ── reactions ──────────────────────────────────────────────────────────────────────────

  async function onNudge(messageId: string, channelId: string, userId: string, nudge: Nudge): Promise<void> {
    const jobId = await core.jobForMessage('discord', messageId);
    if (!jobId) return; // not one of our results
    const thread = client.channels.cache.get(channelId)?.isThread() ? { threadId: channelId } : {};
    const target: ReplyTarget = { platform: 'discord', channelId, messageId, ...thread };
    // One job per user, result and direction, even if the gateway delivers a reaction twice.
    const dedupeKey = `discord:${messageId}:${userId}:${nudge}:${jobId}`;
    if (nudge === 'delete') {
      const reply = await core.nudge(jobId, nudge, userId, dedupeKey, target);
      if (reply && !reply.error) await deliveries.remove(messageId, channelId);
      return;
    }
    const restore = deliveries.expectJob(messageId);
    const reply = await core.nudge(jobId, nudge, userId, dedupeKey, target);
    if (!reply?.job) {
      restore();
      if (reply?.error) log.info({ jobId }, `discord: ${nudge} refused: ${reply.text}`);
      return;
    }
    await link(messageId, reply.job.id);
    await deliveries.setJob(messageId, reply.job.id, reply.text);
  }

  function onReaction(messageId: string, channelId: string, userId: string, isBot: boolean, emoji: string | null): void {
    if (userId === client.user?.id || isBot) return; // our own seeds, other bots
    const nudge = NUDGES.get(emoji ?? '');
    if (!nudge) return;
    reactions.push(`${messageId}:${userId}`, messageId, () =>
      onNudge(messageId, channelId, userId, nudge).catch((err) => log.error({ messageId }, `discord: reaction failed: ${describeError(err)}`)),
    );
  }

  client.on(Events.MessageReactionAdd, (reaction, user) => {
    onReaction(reaction.message.id, reaction.message.channelId, user.id, Boolean(user.bot), reaction.emoji.name);
  });
  // discord.js drops reactions in channels it has not cached, even with partials (a DM after a
  // restart: it can't build a partial DM channel from the event), so those come from the raw packet.
  client.on(Events.Raw, (packet: { t?: string; d?: RawReaction }) => {
    const d = packet.d;
    if (packet.t !== 'MESSAGE_REACTION_ADD' || !d || client.channels.cache.has(d.channel_id)) return;
    onReaction(d.message_id, d.channel_id, d.user_id, Boolean(d.member?.user?.bot), d.emoji?.name ?? null);
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
  const unsubscribe = core.onUpdate('discord', (u) => deliveries.update(u));
  log.info(`discord: logged in as ${client.user?.tag}`);

  return {
    async close() {
      unsubscribe();
      reactions.close();
      await deliveries.idle();
      deliveries.close();
      await client.destroy();
    },
  };
}

/**
 * Debounces reactions per (message, user): a burst of ➕/➖ becomes one call, with the last one winning,
 * and calls for one message run one after another so re-runs never overlap.
 */
class ReactionQueue {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly chains = new Map<string, Promise<void>>();

  constructor(private readonly debounceMs: number) {}

  push(key: string, messageId: string, run: () => Promise<void>): void {
    clearTimeout(this.timers.get(key));
    this.timers.set(key, setTimeout(() => {
      this.timers.delete(key);
      const next = (this.chains.get(messageId) ?? Promise.resolve()).then(run);
      this.chains.set(messageId, next);
      void next.finally(() => { if (this.chains.get(messageId) === next) this.chains.delete(messageId); });
    }, this.debounceMs));
  }

  close(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
