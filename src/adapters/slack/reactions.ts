// Reactions on a job's message, by the person who asked: :heavy_plus_sign: / :heavy_minus_sign: re-run the edit
// stronger / weaker as a new job in the same thread; :x: cancels the job or deletes its result. Slack
// redelivers events it thinks we missed, so each event_id is handled once here and passed to the core as the
// dedupe key (which holds across bot instances). The result's buttons (buttons.ts) go through the same `act`.
import type { App } from '@slack/bolt';
import { CANCELLED_MESSAGE, RESULT_GONE, type FollowUp, type ResultAction, type Via } from '../../core/types.ts';
import { BoundedMap } from '../../util/bounded-map.ts';
import type { SlackDeps } from './deps.ts';
import { messageKey } from './memory.ts';
import { escapeText, pendingText } from './messages.ts';

const ACTIONS: Record<string, ResultAction> = { heavy_plus_sign: 'stronger', heavy_minus_sign: 'weaker', x: 'cancel' };
/** What a follow-up's placeholder says until the core answers. */
const PENDING: Record<FollowUp, string> = { stronger: 'stronger edit', weaker: 'weaker edit', reroll: 'the same edit on a new face', original: 'the original face' };

/** One request on a result: a reaction, or a button press (which names its job and always gets an answer). */
export interface ResultRequest {
  channel: string;
  /** The message reacted on or pressed. */
  ts: string;
  /** Its thread, when Slack said (a button press does). */
  threadTs?: string;
  user: string;
  action: ResultAction;
  dedupeKey: string;
  via: Via;
  /** A button's job; a reaction's comes from the message's link. */
  jobId?: string;
}

export function registerReactions(app: App, deps: SlackDeps): void {
  const seen = new BoundedMap<string, true>(10_000);
  app.event('reaction_added', async ({ event, body, context }) => {
    const action = ACTIONS[event.reaction];
    if (!action || event.item.type !== 'message' || event.item_user !== context.botUserId) return;
    if (seen.has(body.event_id)) return;
    seen.set(body.event_id, true);
    const { channel, ts } = event.item;
    await act(deps, { channel, ts, user: event.user, action, dedupeKey: body.event_id, via: 'reaction' });
  });
}

export async function act(deps: SlackDeps, r: ResultRequest): Promise<void> {
  const { core, client, jobs } = deps;
  const { channel, ts, user } = r;
  const jobId = r.jobId ?? (await core.jobForMessage('slack', messageKey(channel, ts)));
  if (!jobId) return;
  const known = jobs.known.get(jobId);
  // Only the requester acts on a result (the core checks too); someone else's reaction is just a reaction.
  if (r.via === 'reaction' && known && known.requesterId !== user) return;
  const threadTs = known?.threadTs ?? r.threadTs ?? ts; // after a restart, the message stands for its thread
  const tell = (text: string) => client.chat.postEphemeral({ channel, user, thread_ts: threadTs, text });
  if (r.action === 'cancel') {
    const reply = await core.cancel(jobId, user, r.dedupeKey, r.via);
    if (!reply) return;
    // A cancelled job's message gets the core's "Cancelled." update; a deleted result (now or before) leaves the
    // channel: its job message, its image and whatever else shows it. Other refusals (not the requester) are told.
    if (reply.text === CANCELLED_MESSAGE || (reply.error && reply.text !== RESULT_GONE)) return void (await tell(escapeText(reply.text)));
    await jobs.removeResult(jobId, { channel, ts });
    await client.chat.postEphemeral({ channel, user, text: escapeText(reply.text) }); // its thread may be gone
    return;
  }
  const posted = await client.chat.postMessage({ channel, thread_ts: threadTs, text: pendingText(user, PENDING[r.action]) });
  // Slack says which thread the message went in (the parent's, when threadTs was itself a reply).
  const p = { channel, ts: posted.ts as string, threadTs: posted.message?.thread_ts ?? threadTs };
  const reply = await core.nudge(jobId, r.action, user, r.dedupeKey, { platform: 'slack', channelId: channel, messageId: p.ts, threadId: p.threadTs }, r.via);
  if (!reply) {
    await client.chat.delete({ channel, ts: p.ts });
    return;
  }
  await jobs.showReply(reply, p, user, tell);
}
