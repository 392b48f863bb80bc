// What the Slack messages say. Text from users and the core is escaped: Slack reads <, > and & as markup.
import type { types } from '@slack/bolt';
import type { JobUpdate } from '../../core/types.ts';
import { buttonId, parseButtonId, resultButtons, SHOW_BUTTON } from '../result-buttons.ts';

/** Core text (Markdown-ish) as Slack mrkdwn: escaped, and **bold** made *bold*. */
export function escapeText(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/\*\*(.+?)\*\*/g, '*$1*');
}

export function mention(userId: string): string {
  return `<@${userId}>`;
}

/** The placeholder posted before the job exists. */
export function pendingText(userId: string, what: string): string {
  return `:hourglass_flowing_sand: ${mention(userId)} ${escapeText(what)}…`;
}

const ICONS: Record<JobUpdate['status'], string> = {
  queued: ':hourglass_flowing_sand:',
  running: ':art:',
  completed: ':white_check_mark:',
  failed: ':x:',
  cancelled: ':no_entry_sign:',
};

/** The job's message, edited as the job moves on (the core's text already says position and progress). */
export function statusText(update: Pick<JobUpdate, 'status' | 'text' | 'requesterId'>): string {
  return `${ICONS[update.status]} ${mention(update.requesterId)} ${escapeText(update.text)}`;
}

/**
 * Block Kit of a finished job's message: its caption and the result's buttons (action_id = the button id). A
 * `hidden` result (the spoiler setting) says so and leads with 👁 show image.
 */
export function resultBlocks(text: string, jobId: string, actions: JobUpdate['actions'], hidden = false): types.KnownBlock[] {
  const shown = resultButtons(jobId, actions);
  const show = buttonId(SHOW_BUTTON.action, jobId);
  const all = hidden && show ? [{ ...SHOW_BUTTON, id: show }, ...shown] : shown;
  const buttons = all.map((b) => ({
    type: 'button' as const,
    action_id: b.id,
    text: { type: 'plain_text' as const, text: `${b.emoji} ${b.label}`, emoji: true },
    value: jobId,
    ...(b.action === 'cancel' ? { style: 'danger' as const } : b.action === SHOW_BUTTON.action ? { style: 'primary' as const } : {}),
  }));
  const blocks: types.KnownBlock[] = [caption(text)];
  if (hidden) blocks.push({ type: 'context', block_id: SPOILER_BLOCK, elements: [{ type: 'mrkdwn', text: SPOILER_NOTE }] });
  if (buttons.length) blocks.push({ type: 'actions', block_id: 'result', elements: buttons });
  return blocks;
}

function caption(text: string): types.KnownBlock {
  return { type: 'section', text: { type: 'mrkdwn', text: text.length > 3000 ? `${text.slice(0, 2999)}…` : text } };
}

/** The same blocks with another caption (the first block). */
export function withCaption(blocks: types.KnownBlock[], text: string): types.KnownBlock[] {
  return [caption(text), ...blocks.slice(1)];
}

const SPOILER_BLOCK = 'spoiler';
const SPOILER_NOTE = ':see_no_evil: The image is hidden (this workspace shows results as spoilers). Press *show image* to post it in the thread.';

/** A hidden result's blocks once its image is shown: the note and the show button go. */
export function revealedBlocks(blocks: types.KnownBlock[]): types.KnownBlock[] {
  return blocks
    .filter((b) => b.block_id !== SPOILER_BLOCK)
    .map((b) => (b.type === 'actions' ? { ...b, elements: b.elements.filter((e) => !('action_id' in e && parseButtonId(e.action_id ?? '')?.action === SHOW_BUTTON.action)) } : b))
    .filter((b) => b.type !== 'actions' || b.elements.length > 0);
}

/** Why nothing was posted: the bot isn't a member (a channel), or can't be (someone else's DM). */
export function notInChannelText(channel: string, botUserId: string | undefined): string {
  const bot = botUserId ? mention(botUserId) : 'the bot';
  if (channel.startsWith('D')) return `I can't post in this conversation. Run the command in a channel I'm in, or in a DM with ${bot}.`;
  return `I'm not in this channel, so I can't post the result here. Invite me with \`/invite ${bot}\` and try again.`;
}

/** Slack's error code (`not_in_channel`…) of a failed Web API call, else the error's message. */
export function errorCode(err: unknown): string {
  const data = (err as { data?: { error?: string } }).data;
  if (data?.error) return data.error;
  return err instanceof Error ? err.message : String(err);
}
