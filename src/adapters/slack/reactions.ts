// Reactions on a job's message, by the person who asked: :heavy_plus_sign: / :heavy_minus_sign: re-run the edit
// stronger / weaker as a new job in the same thread; :x: cancels the job or deletes its result. Slack
// redelivers events it thinks we missed, so each event_id is handled once here and passed to the core as the
// dedupe key (which holds across bot instances).
import type { App } from '@slack/bolt';
import { CANCELLED_MESSAGE, type Nudge } from '../../core/types.ts';
import { BoundedMap } from '../../util/bounded-map.ts';
import type { SlackDeps } from './deps.ts';
import { messageKey } from './memory.ts';
import { escapeText, pendingText } from './messages.ts';

const ACTIONS: Record<string, Nudge | 'cancel'> = { heavy_plus_sign: 'stronger', heavy_minus_sign: 'weaker', x: 'cancel' };

export function registerReactions(app: App, deps: SlackDeps): void {
  const seen = new BoundedMap<string, true>(10_000);
  app.event('reaction_added', async ({ event, body, context }) => {
    const action = ACTIONS[event.reaction];
    if (!action || event.item.type !== 'message' || event.item_user !== context.botUserId) return;
    if (seen.has(body.event_id)) return;
    seen.set(body.event_id, true);

    const { core, client, jobs } = deps;
    const { channel, ts } = event.item;
    const jobId = await core.jobForMessage('slack', messageKey(channel, ts));
    if (!jobId) return;
    const known = jobs.known.get(jobId);
    if (known && known.requesterId !== event.user) return; // only the requester nudges (the core checks too)
    const threadTs = known?.threadTs ?? ts; // after a restart, the reacted message stands for its thread
    const tell = (text: string) => client.chat.postEphemeral({ channel, user: event.user, thread_ts: threadTs, text });
    if (action === 'cancel') {
      const reply = await core.cancel(jobId, event.user, body.event_id);
      if (!reply) return;
      // A cancelled job's message gets the core's "Cancelled." update; a deleted result (now or before) leaves the
      // channel: its job message, its image and whatever else shows it.
      if (reply.text === CANCELLED_MESSAGE) return void (await tell(escapeText(reply.text)));
      await jobs.removeResult(jobId, { channel, ts });
      await client.chat.postEphemeral({ channel, user: event.user, text: escapeText(reply.text) }); // its thread may be gone
      return;
    }
    const posted = await client.chat.postMessage({ channel, thread_ts: threadTs, text: pendingText(event.user, `${action} edit`) });
    // Slack says which thread the message went in (the parent's, when threadTs was itself a reply).
    const p = { channel, ts: posted.ts as string, threadTs: posted.message?.thread_ts ?? threadTs };
    const reply = await core.nudge(jobId, action, event.user, body.event_id, {
      platform: 'slack',
      channelId: channel,
      messageId: p.ts,
      threadId: p.threadTs,
    });
    if (!reply) {
      await client.chat.delete({ channel, ts: p.ts });
      return;
    }
    await jobs.showReply(reply, p, event.user, tell);
  });
}
