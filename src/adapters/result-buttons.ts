// The buttons under a finished result, the same on every platform (Discord components, Slack Block Kit, the
// playground): what each does, how it looks, and the id a press comes back with. The id holds everything a press
// needs (`sc:<action>:<jobId>`), so buttons keep working after a restart and on any bot instance.
import type { ResultAction } from '../core/types.ts';

export interface ResultButton {
  action: ResultAction;
  emoji: string;
  /** Spelled out too: not every machine has an emoji font. */
  label: string;
}

export const RESULT_BUTTONS: Record<ResultAction, ResultButton> = {
  stronger: { action: 'stronger', emoji: '➕', label: 'stronger' },
  weaker: { action: 'weaker', emoji: '➖', label: 'weaker' },
  reroll: { action: 'reroll', emoji: '🎲', label: 'new face' },
  original: { action: 'original', emoji: '↩', label: 'original' },
  cancel: { action: 'cancel', emoji: '❌', label: 'delete' },
};

/**
 * Slack only: a spoiler result's image goes into the thread when someone presses this (Slack has no spoiler
 * attachments; Discord blurs the attachment instead).
 */
export const SHOW_BUTTON = { action: 'show', emoji: '👁', label: 'show image' } as const;

/** What a button id can name. */
export type ButtonAction = ResultAction | typeof SHOW_BUTTON.action;

/** Discord's limit for a custom_id (Slack's action_id allows 255). */
export const MAX_BUTTON_ID = 100;
const PREFIX = 'sc';

/** The id of a result's button, or null when the job id makes it too long for Discord. */
export function buttonId(action: ButtonAction, jobId: string): string | null {
  const id = `${PREFIX}:${action}:${jobId}`;
  return id.length <= MAX_BUTTON_ID ? id : null;
}

/** What a pressed button asks for; null for an id that is not one of ours. */
export function parseButtonId(id: string): { action: ButtonAction; jobId: string } | null {
  const m = /^sc:([a-z]+):(.+)$/.exec(id);
  if (!m || !(Object.hasOwn(RESULT_BUTTONS, m[1]) || m[1] === SHOW_BUTTON.action)) return null;
  return { action: m[1] as ButtonAction, jobId: m[2] };
}

/** The buttons of a result, with their ids, in the order the core gave its actions. */
export function resultButtons(jobId: string, actions: readonly ResultAction[] = []): (ResultButton & { id: string })[] {
  return actions.flatMap((action) => {
    const id = buttonId(action, jobId);
    return id ? [{ ...RESULT_BUTTONS[action], id }] : [];
  });
}

/** Matches the ids of our buttons (Bolt's `app.action`, discord.js routing). */
export const BUTTON_ID_PATTERN = /^sc:[a-z]+:/;
