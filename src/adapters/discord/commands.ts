// Slash commands and their autocomplete: deferred first (Discord's 3 s), then handed to the core; the reply
// message is registered with the job messages so the job's progress and result land on it.
import {
  ApplicationCommandOptionType,
  MessageFlags,
  PermissionFlagsBits,
  type AutocompleteInteraction,
  type ChatInputCommandInteraction,
  type Client,
} from 'discord.js';
import type { Logger } from '../../log.ts';
import { repliesPublicly, type BotCore, type CommandDefinition, type InvocationContext, type ReplyTarget } from '../../core/types.ts';
import { toCommandInput } from './command-json.ts';
import { clip, redEmbed, type JobMessages } from './job-messages.ts';
import { describeError } from './rest.ts';

/** Autocomplete must answer within Discord's 3 s too; an empty list beats a failed interaction. */
const AUTOCOMPLETE_TIMEOUT_MS = 2000;

export interface DiscordDeps {
  core: BotCore;
  client: Client;
  jobs: JobMessages;
  log: Logger;
}

export function context(i: ChatInputCommandInteraction | AutocompleteInteraction): InvocationContext {
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

/** Lets reactions on the message find the job. The job is queued either way, so a failure here only costs the reactions. */
export async function link(deps: DiscordDeps, messageId: string, jobId: string): Promise<void> {
  try {
    await deps.core.linkMessage('discord', messageId, jobId);
  } catch (err) {
    deps.log.warn({ jobId }, `discord: reactions on message ${messageId} won't work: ${describeError(err)}`);
  }
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

export async function onCommand(deps: DiscordDeps, commands: Map<string, CommandDefinition>, i: ChatInputCommandInteraction): Promise<void> {
  const { core, jobs, log } = deps;
  const def = commands.get(i.commandName);
  // Private for admin and private commands, except a sub-command whose job is followed in the channel: an
  // ephemeral message cannot be edited once its interaction token expires (15 min), and a training runs longer.
  const ephemeral = def ? Boolean(def.adminOnly || def.privateReply) && !repliesPublicly(def, i.options.getSubcommand(false) ?? undefined) : true;
  // First thing, before any call that could wait on the queue or Redis: Discord's 3 s window.
  await i.deferReply(ephemeral ? { flags: MessageFlags.Ephemeral } : {});
  try {
    if (!def) return await replyPrivately(i, true, `Unknown command /${i.commandName}: the bot's commands need re-registering.`, true);
    const message = await i.fetchReply();
    const channelId = i.channelId ?? message.channelId;
    const target: ReplyTarget = { platform: 'discord', channelId, messageId: message.id, ...(i.channel?.isThread() ? { threadId: channelId } : {}) };
    jobs.register({ channelId, messageId: message.id, token: i.token, createdAt: i.createdTimestamp, sizeLimit: i.attachmentSizeLimit, ephemeral });
    const reply = await core.invoke(def.name, toCommandInput(i.options.data), context(i), target);
    if (reply.error || (reply.ephemeral && !ephemeral)) return await replyPrivately(i, ephemeral, reply.text, Boolean(reply.error));
    if (!reply.job) return await jobs.showText(message.id, reply.text);
    await link(deps, message.id, reply.job.id);
    await jobs.setJob(message.id, reply.job.id, reply.text);
  } catch (err) {
    log.error({ command: i.commandName, interactionId: i.id }, `discord: /${i.commandName} failed: ${describeError(err)}`);
    await replyPrivately(i, ephemeral, 'Something went wrong on our side. Please try again in a moment.', true);
  }
}

export async function onAutocomplete(deps: DiscordDeps, i: AutocompleteInteraction): Promise<void> {
  const focused = i.options.getFocused(true);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string[]>((resolve) => {
    timer = setTimeout(() => resolve([]), AUTOCOMPLETE_TIMEOUT_MS);
  });
  const found = await Promise.race([deps.core.autocomplete(i.commandName, focused.name, String(focused.value), context(i)).catch(() => []), timeout]);
  clearTimeout(timer);
  // A choice's value has the option's type: numbers for number/integer options.
  const numeric = focused.type !== ApplicationCommandOptionType.String;
  const choices = found.map((s) => ({ name: s.slice(0, 100), value: numeric ? Number(s) : s.slice(0, 100) }));
  await i.respond(choices.filter((c) => !Number.isNaN(c.value)).slice(0, 25));
}
