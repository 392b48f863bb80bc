// Reactions on a result, by the person who asked: ➕/➖ re-run the edit stronger/weaker on the same message, ❌
// cancels the job or deletes its result. A burst of reactions collapses into one call (the last wins), calls
// for one message run in order, and a ➕/➖ the core refuses is explained to the user in a short-lived reply.
// A button press (buttons.ts) is routed through the same `react`, answered privately instead.
import { Events, Routes } from 'discord.js';
import { RESULT_GONE, type ReplyTarget, type ResultAction } from '../../core/types.ts';
import { SerialQueue } from '../../util/serial-queue.ts';
import { link, type DiscordDeps } from './commands.ts';
import { REACTIONS } from './job-messages.ts';
import { describeError } from './rest.ts';

interface RawReaction { message_id: string; channel_id: string; user_id: string; emoji?: { name: string | null }; member?: { user?: { bot?: boolean } } }

const ACTIONS = new Map<string, ResultAction>([
  [REACTIONS.stronger, 'stronger'],
  [REACTIONS.weaker, 'weaker'],
  [REACTIONS.cancel, 'cancel'],
]);
/** How long the reply explaining a refused ➕/➖ stays in the channel. */
const REFUSAL_SHOWN_MS = 20_000;

export interface ReactionOptions {
  /** Quiet time that collapses a user's rapid reactions on one message into one job (default 750). */
  debounceMs?: number;
}

/** A button press standing for a reaction: the job its id names, and how to answer the presser privately. */
export interface Press {
  jobId: string;
  answer(text: string): Promise<void>;
}

export interface ReactionRouter {
  /** Runs a reaction's (or a button's) action, after whatever is under way on the same message. */
  run(messageId: string, channelId: string, userId: string, action: ResultAction, press?: Press): Promise<void>;
  /** Stops the timers. */
  stop(): void;
}

/** Listens to reactions; buttons.ts routes presses through the returned router. */
export function registerReactions(deps: DiscordDeps, options: ReactionOptions = {}): ReactionRouter {
  const { client, log } = deps;
  const debounceMs = options.debounceMs ?? 750;
  const timers = new Map<string, NodeJS.Timeout>();
  const perMessage = new SerialQueue();
  const run = (messageId: string, channelId: string, userId: string, action: ResultAction, press?: Press) =>
    perMessage.run(messageId, () => react(deps, messageId, channelId, userId, action, press));

  function onReaction(messageId: string, channelId: string, userId: string, isBot: boolean, emoji: string | null): void {
    if (userId === client.user?.id || isBot) return; // our own seeds, other bots
    const action = ACTIONS.get(emoji ?? '');
    if (!action) return;
    const key = `${messageId}:${userId}`;
    clearTimeout(timers.get(key));
    timers.set(
      key,
      setTimeout(() => {
        timers.delete(key);
        void run(messageId, channelId, userId, action).catch((err) => log.error({ messageId }, `discord: reaction failed: ${describeError(err)}`));
      }, debounceMs),
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

  return {
    run,
    stop() {
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
    },
  };
}

async function react(deps: DiscordDeps, messageId: string, channelId: string, userId: string, action: ResultAction, press?: Press): Promise<void> {
  const { core, client, jobs } = deps;
  const jobId = press?.jobId ?? (await core.jobForMessage('discord', messageId));
  if (!jobId) return; // not one of our results
  // One job per user, result and action, even if the gateway delivers a reaction twice or a button is pressed
  // again (or both are used): the same key for either way in.
  const dedupeKey = `discord:${messageId}:${userId}:${action}:${jobId}`;
  const via = press ? 'button' : 'reaction';
  const tell = (text: string) => (press ? press.answer(text) : tellRefusal(deps, channelId, messageId, userId, text));
  if (action === 'cancel') {
    const reply = await core.cancel(jobId, userId, dedupeKey, via);
    // Deleted now, or already gone (what is left of it goes too).
    if (reply && (!reply.error || reply.text === RESULT_GONE)) await jobs.remove(messageId, channelId);
    if (reply?.error && press) await tell(reply.text);
    return;
  }
  const thread = client.channels.cache.get(channelId)?.isThread() ? { threadId: channelId } : {};
  const target: ReplyTarget = { platform: 'discord', channelId, messageId, ...thread };
  const reply = await core.nudge(jobId, action, userId, dedupeKey, target, via);
  if (reply?.job) {
    await link(deps, messageId, reply.job.id);
    await jobs.setJob(messageId, reply.job.id, reply.text);
  } else if (reply?.error) {
    await tell(reply.text);
  }
}

/** Reactions have no interaction to answer privately: a reply to the result that names the user, removed again soon. */
async function tellRefusal(deps: DiscordDeps, channelId: string, messageId: string, userId: string, text: string): Promise<void> {
  const { client, log } = deps;
  try {
    const sent = (await client.rest.post(Routes.channelMessages(channelId), {
      body: {
        content: `<@${userId}> ${text}`.slice(0, 2000),
        message_reference: { message_id: messageId, fail_if_not_exists: false },
        allowed_mentions: { users: [userId] },
      },
    })) as { id: string };
    setTimeout(() => void client.rest.delete(Routes.channelMessage(channelId, sent.id)).catch(() => {}), REFUSAL_SHOWN_MS).unref();
  } catch (err) {
    log.info({ messageId }, `discord: could not explain a refused reaction: ${describeError(err)}`);
  }
}
