// Slash commands: one per bot-core command (`/styleclip curly hair strength:3`), the text after the command
// handed to the core as is. ack() first (Slack allows 3 s). A command that takes a prompt may queue a job, so
// a public placeholder is posted before the core sees it: the job stores that message as its target, and
// any bot instance can then edit it with progress and the result. Other commands just answer.
import type { App, RespondFn, SlashCommand } from '@slack/bolt';
import { repliesPublicly, type CommandDefinition, type CommandReply, type InvocationContext } from '../../core/types.ts';
import type { SlackDeps } from './deps.ts';
import { errorCode, escapeText, notInChannelText, pendingText } from './messages.ts';

/** Errors of chat.postMessage that mean the bot can't post in the channel. */
const NOT_A_MEMBER = ['not_in_channel', 'channel_not_found'];

export function registerCommands(app: App, deps: SlackDeps): void {
  for (const def of deps.core.commands()) {
    app.command(`/${def.name}`, async ({ command, ack, respond, context }) => {
      await ack();
      await runCommand(def, command, respond, context.botUserId, deps);
    });
  }
}

async function runCommand(
  def: CommandDefinition,
  command: SlashCommand,
  respond: RespondFn,
  botUserId: string | undefined,
  deps: SlackDeps,
): Promise<void> {
  const { core, client, log } = deps;
  const channel = command.channel_id;
  const tell = (text: string) => respond({ response_type: 'ephemeral', replace_original: false, text });
  const ctx: InvocationContext = {
    platform: 'slack',
    // Slack DM channel ids start with D; the contract wants null there.
    serverId: channel.startsWith('D') ? null : command.team_id,
    channelId: channel,
    user: { id: command.user_id, name: command.user_name },
    // Only admin commands look at it; asking Slack (users.info, rate-limited) for every edit would slow them down.
    isPlatformAdmin: def.adminOnly ? await deps.admins.isAdmin(command.user_id) : false,
    requestId: command.trigger_id,
  };
  const input = { kind: 'text' as const, text: command.text ?? '' };
  const invoke = async (messageTs?: string): Promise<CommandReply> => {
    try {
      return await core.invoke(def.name, input, ctx, { platform: 'slack', channelId: channel, messageId: messageTs, threadId: messageTs });
    } catch (err) {
      log.error({ err, command: def.name }, 'slack command failed');
      return { text: 'Sorry, something went wrong on my side. Please try again.', error: true };
    }
  };

  // Only commands that take a prompt make pictures, and admin sub-commands that start a job followed in the
  // channel (a training); the rest (help, info, settings…) answer at once.
  const startsJob = def.adminOnly ? repliesPublicly(def, input.text.trim().split(/\s+/)[0]?.toLowerCase()) : !!def.freeTextOption;
  if (!startsJob) {
    const reply = await invoke();
    await respond({ response_type: reply.ephemeral || reply.error ? 'ephemeral' : 'in_channel', text: escapeText(reply.text) });
    return;
  }
  let ts: string;
  try {
    const posted = await client.chat.postMessage({ channel, text: pendingText(command.user_id, `${command.command} ${input.text}`.trim()) });
    ts = posted.ts as string;
  } catch (err) {
    const code = errorCode(err);
    if (NOT_A_MEMBER.includes(code)) await tell(notInChannelText(channel, botUserId));
    else {
      // Anything else (restricted channel, archived, rate limit…): the user still hears why nothing happened.
      log.warn({ command: def.name, channel, err: code }, 'slack: placeholder not posted');
      await tell(`I couldn't post in this channel (${code}), so nothing was queued. Please try again, or ask an admin.`);
    }
    return;
  }
  const reply = await invoke(ts);
  await deps.jobs.showReply(reply, { channel, ts, threadTs: ts }, command.user_id, tell);
}
