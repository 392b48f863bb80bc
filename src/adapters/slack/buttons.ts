// Presses of a result's buttons (Block Kit actions on the job message): ack() at once (Slack allows 3 s), then
// the same `act` as the reaction the button stands for. The button's id names the action and the job, so a press
// works after a restart; refusals go to the presser alone. 👁 show image (a spoiler result) is anyone's to press.
import type { App, BlockAction, ButtonAction, types } from '@slack/bolt';
import { RESULT_GONE } from '../../core/types.ts';
import { BUTTON_ID_PATTERN, parseButtonId } from '../result-buttons.ts';
import type { SlackDeps } from './deps.ts';
import { act } from './reactions.ts';

export function registerButtons(app: App, deps: SlackDeps): void {
  app.action<BlockAction<ButtonAction>>(BUTTON_ID_PATTERN, async ({ ack, body, action }) => {
    await ack();
    const pressed = parseButtonId(action.action_id);
    const channel = body.channel?.id ?? body.container?.channel_id;
    const ts = body.message?.ts ?? body.container?.message_ts;
    if (!pressed || !channel || !ts) return;
    const user = body.user.id;
    const threadTs = body.message?.thread_ts;
    if (pressed.action === 'show') {
      const message = { channel, ts, threadTs: threadTs ?? ts };
      const blocks = (body.message?.blocks ?? []) as types.KnownBlock[];
      const outcome = await deps.jobs.reveal(pressed.jobId, message, String(body.message?.text ?? ''), blocks);
      const note = outcome === 'already' ? 'The image is already in the thread.' : outcome === 'gone' ? RESULT_GONE : undefined;
      if (note) await deps.client.chat.postEphemeral({ channel, user, thread_ts: message.threadTs, text: note });
      return;
    }
    await act(deps, {
      channel,
      ts,
      threadTs,
      user,
      action: pressed.action,
      // One request per user, message, action and job: Slack's redelivery, or a second press, queues nothing more.
      dedupeKey: `slack:${channel}:${ts}:${user}:${pressed.action}:${pressed.jobId}`,
      via: 'button',
      jobId: pressed.jobId,
    });
  });
}
